"""The HTTP app: OpenAI's completions API, the model list, health, and the playground.

    from charrnn.serve import app
    asgi = app({"shakespeare": "charrnn-runs/shakespeare-..."}, api_key="s3cret")
    # uvicorn.run(asgi), or mount it: Starlette(routes=[Mount("/charrnn", asgi)])

    GET  /                 the playground page (one file, no network)
    GET  /health           {"status": "ok", ...}, no key needed
    GET  /v1/models        the served models;  GET /v1/models/{id}
    POST /v1/completions   see charrnn.serve.protocol (language models)
    POST /v1/transduce     see charrnn.serve.tasks (transducers: --task seq2seq runs)
    POST /v1/classify      see charrnn.serve.tasks (classifiers: --task classify runs)

Starlette (routing, streaming responses, lifespan) on any ASGI server; the command runs
uvicorn. Every error is OpenAI's JSON shape with its status: 400 bad request, 401 key,
404 unknown model or path, 405, 413 body too large, 429 too much in flight (Retry-After).
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
import uuid
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from charrnn.data.text import encode_text
from charrnn.errors import ConfigError
from charrnn.serve import protocol as P
from charrnn.serve import tasks
from charrnn.serve.batcher import Engine, Job, Scheduler
from charrnn.serve.models import ServedModel

log = logging.getLogger("charrnn.serve")


class State:
    """What the routes share: the models, the scheduler, the options."""

    def __init__(self, models, api_key, limits, batching, unknown, watch):
        self.models = {m.name: m for m in models}
        self.api_key, self.limits, self.unknown, self.watch = api_key, limits, unknown, watch
        self.capacity = limits.max_batch if batching else 1
        self.scheduler = Scheduler()
        for m in models:
            if m.kind == "lm":   # transducers and classifiers: charrnn.serve.tasks
                self.scheduler.add(Engine(m.model, self.capacity, m.name, m.version))
        self.task_locks, self.task_waiting = {}, {}


def _served(models):
    if isinstance(models, dict):
        return [ServedModel.from_source(v, name=k) if not isinstance(v, ServedModel) else v
                for k, v in models.items()]
    if isinstance(models, (list, tuple)):
        return [m if isinstance(m, ServedModel) else ServedModel.from_source(m) for m in models]
    return [models if isinstance(models, ServedModel) else ServedModel.from_source(models)]


def app(models, *, api_key=None, limits=None, batching=True, unknown="error", watch=0.0):
    """An ASGI app serving `models`: a CharRNN, a run directory or .safetensors path, a
    list of them, or a dict id -> one of them. api_key: required as `Authorization:
    Bearer KEY` on /v1/*. limits: protocol.Limits. batching=False: one request at a time.
    unknown="skip": prompt characters outside the vocabulary are dropped, not a 400.
    watch > 0: every `watch` seconds, reload a run whose checkpoint changed."""
    state = State(_served(models), api_key or None, limits or P.Limits(), batching,
                  unknown, watch)

    @contextlib.asynccontextmanager
    async def lifespan(application):
        state.scheduler.start()
        task = asyncio.create_task(_watch(state)) if state.watch else None
        try:
            yield
        finally:
            if task:
                task.cancel()
            await asyncio.to_thread(state.scheduler.stop)

    routes = [Route("/", playground), Route("/health", health),
              Route("/v1/models", list_models), Route("/v1/models/{name:path}", get_model),
              Route("/v1/completions", completions, methods=["POST"]),
              Route("/v1/transduce", transduce, methods=["POST"]),
              Route("/v1/classify", classify, methods=["POST"])]
    handlers = {HTTPException: _http_error, P.APIError: _api_error}
    application = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    application.state.charrnn = state
    return application


# ---- routes -----------------------------------------------------------------------------

async def playground(request):
    page = resources.files("charrnn.serve").joinpath("playground.html").read_text("utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


async def health(request):
    s = _state(request)
    return JSONResponse({"status": "ok" if s.scheduler.error is None else "error",
                         "models": list(s.models), "in_flight": s.scheduler.in_flight(),
                         "steps": s.scheduler.stepped, "peak_batch": s.scheduler.peak})


async def list_models(request):
    s = _auth(request)
    return JSONResponse({"object": "list", "data": [m.describe() for m in s.models.values()]})


async def get_model(request):
    s = _auth(request)
    name = request.path_params["name"]
    if name not in s.models:
        raise P.APIError(404, f"the model {name!r} does not exist", "model", "model_not_found")
    return JSONResponse(s.models[name].describe())


async def transduce(request):
    s = _auth(request)
    return JSONResponse(await tasks.transduce(s, await _body(request, s.limits)))


async def classify(request):
    s = _auth(request)
    return JSONResponse(await tasks.classify(s, await _body(request, s.limits)))


async def completions(request):
    s = _auth(request)
    req = P.parse_completion(await _body(request, s.limits), s.limits, s.models)
    if s.models[req.model].kind != "lm":
        kind = s.models[req.model].kind
        raise P.APIError(400, f"the model {req.model!r} is {tasks.WHAT[kind]}, not a language "
                         f"model: use {tasks.ENDPOINT[kind]}", "model", "wrong_model_kind")
    if s.scheduler.error is not None:
        raise P.APIError(500, f"the batch thread failed ({s.scheduler.error!r}); restart the "
                         "server", code="internal_error")
    engine = s.scheduler.newest(req.model)
    prompts = [_encode(engine, p, s.unknown) for p in req.prompts]
    choices = len(prompts) * req.n
    room = s.capacity * sum(m.kind == "lm" for m in s.models.values()) + s.limits.max_queue
    if s.scheduler.in_flight() + choices > room:
        raise P.APIError(429, f"the server is busy ({room} generations in flight at most); "
                         "retry shortly", code="too_many_requests", headers={"Retry-After": "1"})
    seed = req.seed if req.seed is not None else int.from_bytes(os.urandom(8), "little")
    loop, events = asyncio.get_running_loop(), asyncio.Queue()
    jobs = [Job(engine, ids, text, seed=seed, stream=j, temperature=req.temperature,
                top_k=req.top_k, top_p=req.top_p, max_tokens=req.max_tokens, stop=req.stop,
                logprobs=req.logprobs, loop=loop, events=events, index=i * req.n + j)
            for i, (ids, text) in enumerate(prompts) for j in range(req.n)]
    for job in jobs:
        s.scheduler.submit(job)
    meta = dict(cid=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=req.model,
                fingerprint=f"charrnn-{engine.name}-v{engine.version}")
    if req.stream:
        return _EventStream(_stream(req, jobs, events, meta),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return await _collect(request, req, jobs, events, meta)


# ---- completions: whole or streamed -----------------------------------------------------

def _echo(job, req):
    """The prompt as the start of a choice's text, and its logprobs entries (null: the
    prompt's own probabilities are not computed)."""
    if not req.echo:
        return "", []
    return job.prompt_text, [(c, None, None) for c in job.prompt_text]


async def _collect(request, req, jobs, events, meta):
    texts = {j.index: _echo(j, req)[0] for j in jobs}
    entries = {j.index: _echo(j, req)[1] for j in jobs}
    reasons = {}
    try:
        while len(reasons) < len(jobs):
            try:
                ev = await asyncio.wait_for(events.get(), 0.25)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return JSONResponse(P.error_body("client disconnected"), 499)
                continue
            idx, kind = ev[0], ev[1]
            if kind == "text":
                texts[idx] += ev[2]
                entries[idx] += ev[3]
            elif kind == "done":
                reasons[idx] = ev[2]
            else:
                raise P.APIError(500, ev[2], code="internal_error")
    finally:
        for j in jobs:
            j.cancel()
    choices = [P.choice(j.index, texts[j.index], reasons[j.index],
                        P.logprobs_body(entries[j.index], 0) if req.logprobs is not None
                        else None) for j in jobs]
    usage = _usage(req, jobs)
    return JSONResponse(P.completion(meta["cid"], meta["model"], choices, usage,
                                     meta["created"], meta["fingerprint"]))


def _usage(req, jobs):
    prompt = sum(len(j.prompt_text) for j in jobs[::req.n])
    return P.usage(prompt, sum(j.generated for j in jobs))


async def _stream(req, jobs, events, meta):
    def chunk(choices, usage=None):
        body = P.completion(meta["cid"], meta["model"], choices, usage, meta["created"],
                            meta["fingerprint"])
        if usage is None:
            del body["usage"]
        return P.sse(body)

    offsets = {}
    try:
        for j in jobs:
            text, ent = _echo(j, req)
            offsets[j.index] = len(text)
            if text:
                yield chunk([P.choice(j.index, text, None, P.logprobs_body(ent, 0)
                                      if req.logprobs is not None else None)])
        done = 0
        while done < len(jobs):
            await asyncio.sleep(0)   # let a disconnect be seen even while events pour in
            ev = await events.get()
            idx, kind = ev[0], ev[1]
            if kind == "text":
                lp = P.logprobs_body(ev[3], offsets[idx]) if req.logprobs is not None else None
                offsets[idx] += len(ev[2])
                yield chunk([P.choice(idx, ev[2], None, lp)])
            elif kind == "done":
                done += 1
                yield chunk([P.choice(idx, "", ev[2])])
            else:
                yield P.sse(P.error_body(ev[2], "server_error", None, "internal_error"))
                break
        if req.include_usage:
            yield chunk([], _usage(req, jobs))
        yield P.DONE
    finally:   # also when the client went away: the rows are freed at the next step
        for j in jobs:
            j.cancel()


class _EventStream(StreamingResponse):
    """A streaming response that stops as soon as the client disconnects, whatever the
    server's ASGI version (Starlette only watches for it below ASGI 2.4): the generator
    is cancelled where it waits, and its `finally` frees the rows."""

    async def __call__(self, scope, receive, send):
        import anyio

        async with anyio.create_task_group() as tg:
            async def watch():
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                await self.stream_response(send)
            except OSError:     # the transport closed under us: the same as a disconnect
                pass
            tg.cancel_scope.cancel()


# ---- helpers ----------------------------------------------------------------------------

def _state(request) -> State:
    return request.app.state.charrnn


def _auth(request) -> State:
    s = _state(request)
    if s.api_key is None:
        return s
    given = request.headers.get("authorization", "")
    scheme, _, key = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(),
                                                             s.api_key.encode()):
        raise P.APIError(401, "incorrect or missing API key: send 'Authorization: Bearer "
                         "KEY' with the server's --api-key", code="invalid_api_key",
                         headers={"WWW-Authenticate": "Bearer"})
    return s


async def _body(request, limits):
    size = request.headers.get("content-length")
    too_big = P.APIError(413, f"the request body is larger than {limits.max_body} bytes",
                         code="request_too_large")
    if size is not None and size.isdigit() and int(size) > limits.max_body:
        raise too_big
    parts, n = [], 0
    async for part in request.stream():
        n += len(part)
        if n > limits.max_body:
            raise too_big
        parts.append(part)
    return b"".join(parts)


def _encode(engine, prompt, unknown):
    """(ids int32, the prompt's text) of a prompt: a str, or a list of character ids."""
    import numpy as np
    smp = engine.sampler
    if isinstance(prompt, list):
        V = len(engine.vocab)
        bad = [i for i in prompt if not 0 <= i < V]
        if bad:
            raise P.APIError(400, f"character ids {bad[:10]} are outside the vocabulary "
                             f"(0..{V - 1})", "prompt", "invalid_value")
        ids = np.asarray(prompt, np.int32)
        text = smp.ids_to_text(ids)
    else:
        if unknown == "skip" and not smp.bytes:
            known = set(engine.vocab)
            prompt = "".join(c for c in prompt if c in known)
        try:
            ids = encode_text(prompt, engine.vocab, smp.encoding, what="the prompt")
        except ConfigError as e:
            raise P.APIError(400, str(e), "prompt", "unknown_characters") from None
        text = prompt
    if len(ids) == 0:
        ids = np.array([smp._start])
    return np.ascontiguousarray(ids, dtype=np.int32), text


async def _watch(state):
    while True:
        await asyncio.sleep(state.watch)
        for served in state.models.values():
            model = await asyncio.to_thread(served.newer)
            if model is not None and served.kind != "lm":   # swapped in by newer()
                log.warning("charrnn: reloaded %s from %s (version %d)", served.name,
                            served.checkpoint(), served.version)
            elif model is not None:
                engine = await asyncio.to_thread(Engine, model, state.capacity, served.name,
                                                 served.version)
                state.scheduler.swap(engine)
                log.warning("charrnn: reloaded %s from %s (version %d)", served.name,
                            served.checkpoint(), served.version)


async def _http_error(request, exc):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return JSONResponse(P.error_body(exc.detail, "invalid_request_error", None, code),
                        exc.status_code, headers=getattr(exc, "headers", None))


async def _api_error(request, exc):
    return JSONResponse(exc.body(), exc.status, headers=exc.headers)

