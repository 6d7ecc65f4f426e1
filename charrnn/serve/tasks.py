"""Transducers and classifiers over HTTP (`charrnn serve RUN` of a --task seq2seq or
--task classify run): two JSON endpoints beside OpenAI's completions.

    POST /v1/transduce  {"model": ID, "input": "hello" or ["hello", ...],
                         "beam": 1, "nbest": null, "joint": true}
      -> {"object": "transduction", "model": ID,
          "data": [{"index": 0, "input": "hello", "output": "HH AH0 L OW1"}, ...]}
         with "nbest": N, each item also has "outputs": [{"output", "logprob"}, ...]
    POST /v1/classify   {"model": ID, "input": "text" or [...], "top": 1}
      -> {"object": "classification", "model": ID,
          "data": [{"index": 0, "input": ..., "label": ..., "probability": p,
                    "top": [{"label": ..., "probability": p}, ...]}, ...]}

"model" may be left out when the server holds one model of that kind. "beam" > 1 is
re-ranked by the run's joint model unless "joint" is false (charrnn transduce's
--no-joint). The work runs on a worker thread (the kernels release the GIL), one request
per model at a time, in order; a request waits while the model is busy, and beyond
Limits.max_queue waiting requests the answer is 429. Errors are OpenAI's JSON shape, as
for completions: 400 for a bad field (naming it), 404 for an unknown model.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import replace

from charrnn.errors import CharRNNError
from charrnn.serve.protocol import APIError, _bad, _bool, _int, json_object

MAX_INPUTS = 1024   # texts per request
MAX_BEAM = 64
THREADS = os.cpu_count() or 1
ENDPOINT = {"lm": "/v1/completions", "seq2seq": "/v1/transduce", "classifier": "/v1/classify"}
WHAT = {"lm": "a language model", "seq2seq": "a transducer", "classifier": "a classifier"}


def _parse(raw, limits, models, kind, fields):
    """(served model, texts, body) of a request for an endpoint of `kind` models."""
    body = json_object(raw, {"model", "input"} | set(fields), "this endpoint takes")
    name = body.get("model")
    mine = [n for n, m in models.items() if m.kind == kind]
    if name is None and len(mine) == 1:
        name = mine[0]
    if not isinstance(name, str):
        _bad(f"model must be a string: one of {', '.join(mine) or '(none of this kind)'}",
             "model", "invalid_type" if name is not None else "missing_required_parameter")
    if name not in models:
        raise APIError(404, f"the model {name!r} does not exist; served: {', '.join(models)}",
                       param="model", code="model_not_found")
    served = models[name]
    if served.kind != kind:
        _bad(f"the model {name!r} is {WHAT[served.kind]}: use {ENDPOINT[served.kind]}", "model",
             "wrong_model_kind")
    texts = body.get("input")
    if texts is None:
        _bad("input is required: a string or a list of strings", "input",
             "missing_required_parameter")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts:
        _bad("input must be a string or a non-empty list of strings", "input", "invalid_type")
    if len(texts) > MAX_INPUTS:
        _bad(f"at most {MAX_INPUTS} inputs per request, got {len(texts)}", "input")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t:
            _bad(f"input {i} must be a non-empty string, not {t!r}"[:200], "input",
                 "invalid_type" if not isinstance(t, str) else "invalid_value")
        if len(t) > limits.max_prompt:
            _bad(f"input {i} has {len(t)} characters; at most {limits.max_prompt}", "input")
    return served, texts, body


async def _run(state, served, fn):
    """fn() on a worker thread, after the model's earlier requests (429 beyond max_queue)."""
    lock = state.task_locks.setdefault(served.name, asyncio.Lock())
    waiting = state.task_waiting.get(served.name, 0)
    if waiting > state.limits.max_queue:
        raise APIError(429, f"the model {served.name!r} is busy ({waiting} requests waiting); "
                       "retry shortly", code="too_many_requests", headers={"Retry-After": "1"})
    state.task_waiting[served.name] = waiting + 1
    try:
        async with lock:
            try:
                return await asyncio.to_thread(fn)
            except CharRNNError as e:
                raise APIError(400, str(e), "input", "invalid_value") from None
    finally:
        state.task_waiting[served.name] -= 1


async def transduce(state, raw):
    served, texts, body = _parse(raw, state.limits, state.models, "seq2seq",
                                 ("beam", "nbest", "joint"))
    beam = _int(body, "beam", 1, 1, MAX_BEAM)
    nbest = _int(body, "nbest", None, 1, MAX_BEAM)
    joint = True if body.get("joint") is None else _bool(body, "joint")
    t = served.model if joint else replace(served.model, joint=None)

    def work():   # batches on every core, as charrnn transduce decodes them
        if nbest:
            return t.nbest(texts, nbest, max(beam, nbest), threads=THREADS)
        return t.transduce(texts, beam, threads=THREADS)
    result = await _run(state, served, work)
    data = []
    for i, (text, r) in enumerate(zip(texts, result)):
        item = {"index": i, "input": text}
        if nbest:
            item["output"] = r[0][0] if r else ""
            item["outputs"] = [{"output": o, "logprob": round(float(lp), 6)} for o, lp in r]
        else:
            item["output"] = r
        data.append(item)
    return {"object": "transduction", "model": served.name, "data": data}


async def classify(state, raw):
    served, texts, body = _parse(raw, state.limits, state.models, "classifier", ("top",))
    c = served.model
    top = _int(body, "top", 1, 1, len(c.labels))
    result = await _run(state, served, lambda: c.top(texts, top))
    data = [{"index": i, "input": text, "label": r[0][0], "probability": round(r[0][1], 6),
             "top": [{"label": lab, "probability": round(p, 6)} for lab, p in r]}
            for i, (text, r) in enumerate(zip(texts, result))]
    return {"object": "classification", "model": served.name, "data": data}
