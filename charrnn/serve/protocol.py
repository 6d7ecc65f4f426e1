"""The OpenAI completions protocol: request checks, response and error shapes.

    req = parse_completion(body_bytes, limits, models)    # APIError (status + JSON) if bad
    completion(...), chunk(...), error_body(...)           # the JSON OpenAI clients expect

Fields of POST /v1/completions (OpenAI's, with characters for tokens):
    model         a served model's id (optional when one model is served)
    prompt        str, list of str, list of int (character ids), or list of lists of int
    max_tokens    characters to generate per choice (default 256; cap Limits.max_tokens)
    temperature   >= 0, 0 greedy (default 1);  top_p (0, 1];  top_k >= 1 (charrnn's own)
    n             choices per prompt (choice j draws from stream j of the seed, as
                  `charrnn sample --num-samples`)
    stop          str or list of up to 4 str; the text ends before it (not included)
    seed          int in [0, 2**64): the text `charrnn sample --seed` gives
    stream        server-sent events, `data: {chunk}` ... `data: [DONE]`
    logprobs      0..5: the chosen character's log-probability (temperature 1, the
                  model's own distribution) and the 0..5 likeliest alternatives
    echo          the prompt is part of the text
    user, suffix (null only), presence/frequency_penalty (0 only), best_of (= n only),
    logit_bias (empty only), stream_options {"include_usage"}: accepted as OpenAI's
Anything else is a 400 naming the field.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

DEFAULT_MAX_TOKENS = 256
MAX_STOP = 4
MAX_LOGPROBS = 5


@dataclass
class Limits:
    """Caps on what one request may ask, and on the work in flight."""
    max_body: int = 1 << 20        # bytes of a request body
    max_prompt: int = 32_768       # characters of one prompt
    max_tokens: int = 8192         # characters generated per choice
    max_n: int = 16                # choices per request (all prompts together: max_n * 4)
    max_batch: int = 64            # rows stepped together per model
    max_queue: int = 256           # choices waiting for a row, beyond which 429


class APIError(Exception):
    """An error a client gets as OpenAI's JSON: {"error": {message, type, param, code}}."""

    def __init__(self, status, message, param=None, code=None, type=None, headers=None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or {400: "invalid_request_error", 401: "invalid_request_error",
                             404: "invalid_request_error", 413: "invalid_request_error",
                             429: "rate_limit_exceeded"}.get(status, "server_error")
        self.headers = headers or {}

    def body(self):
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message, type="invalid_request_error", param=None, code=None):
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass
class CompletionRequest:
    model: str
    prompts: list                  # each a str or a list of int ids
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    n: int = 1
    stop: tuple = ()
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False
    logprobs: int | None = None
    echo: bool = False
    extra: dict = field(default_factory=dict)


_IGNORED_IF = {"user": None, "suffix": None, "presence_penalty": 0, "frequency_penalty": 0,
               "logit_bias": None, "best_of": None, "stream_options": None}


def _bad(message, param, code="invalid_value"):
    raise APIError(400, message, param=param, code=code)


def _int(body, name, default, lo, hi):
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        _bad(f"{name} must be an integer, not {type(v).__name__}", name, "invalid_type")
    if not lo <= v <= hi:
        _bad(f"{name} must be in [{lo}, {hi}], got {v}", name)
    return v


def _num(body, name, default, ok, what):
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        _bad(f"{name} must be a number, not {type(v).__name__}", name, "invalid_type")
    if not math.isfinite(v) or not ok(v):
        _bad(f"{name} must be {what}, got {v}", name)
    return float(v)


def _bool(body, name):
    v = body.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        _bad(f"{name} must be true or false, not {type(v).__name__}", name, "invalid_type")
    return v


def json_object(raw: bytes, known, said):
    """The request body as a dict, or a 400: not JSON, not an object, or a field outside
    `known` (the message lists them after `said`)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(400, f"the body is not valid JSON ({e})", code="invalid_json") from None
    if not isinstance(body, dict):
        _bad("the body must be a JSON object", None, "invalid_type")
    unknown = sorted(k for k in body if k not in known)
    if unknown:
        _bad(f"unknown field {unknown[0]!r} ({said}: {', '.join(sorted(known))})",
             unknown[0], "unknown_parameter")
    return body


def parse_completion(raw: bytes, limits: Limits, model_ids) -> CompletionRequest:
    """Check a request body; APIError (400 or 404) saying what is wrong and where."""
    known = {"model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stop",
             "seed", "stream", "logprobs", "echo"} | set(_IGNORED_IF)
    body = json_object(raw, known, "charrnn serves")
    for name, neutral in _IGNORED_IF.items():
        v = body.get(name)
        if v is None or name == "user" and isinstance(v, str):
            continue
        if name == "stream_options" and isinstance(v, dict) and set(v) <= {"include_usage"}:
            continue
        if name == "logit_bias" and v == {}:
            continue
        if name == "best_of" and v == body.get("n", 1):
            continue
        if neutral is not None and v == neutral and not isinstance(v, bool):
            continue
        _bad(f"{name}={v!r} is not supported by charrnn serve", name, "unsupported_parameter")
    model = body.get("model")
    ids = list(model_ids)
    if model is None and len(ids) == 1:
        model = ids[0]
    if not isinstance(model, str):
        _bad("model must be a string: one of " + ", ".join(ids), "model",
             "invalid_type" if model is not None else "missing_required_parameter")
    if model not in ids:
        raise APIError(404, f"the model {model!r} does not exist; served: {', '.join(ids)}",
                       param="model", code="model_not_found")
    prompts = _prompts(body.get("prompt", ""), limits)
    n = _int(body, "n", 1, 1, limits.max_n)
    if n * len(prompts) > limits.max_n * 4:
        _bad(f"n x prompts is {n * len(prompts)}, more than {limits.max_n * 4}", "n")
    stop = body.get("stop")
    stop = () if stop is None else (stop,) if isinstance(stop, str) else stop
    if not isinstance(stop, (list, tuple)) or len(stop) > MAX_STOP or not all(
            isinstance(s, str) and 0 < len(s) <= 256 for s in stop):
        _bad(f"stop must be a non-empty string or a list of up to {MAX_STOP} of them",
             "stop", "invalid_type")
    stream_options = body.get("stream_options") or {}
    req = CompletionRequest(
        model=model, prompts=prompts,
        max_tokens=_int(body, "max_tokens", DEFAULT_MAX_TOKENS, 1, limits.max_tokens),
        temperature=_num(body, "temperature", 1.0, lambda v: v >= 0, ">= 0 (0: greedy)"),
        top_p=_num(body, "top_p", None, lambda v: 0 < v <= 1, "in (0, 1]"),
        top_k=_int(body, "top_k", None, 1, 1 << 30),
        n=n, stop=tuple(stop), seed=_int(body, "seed", None, 0, 2**64 - 1),
        stream=_bool(body, "stream"), echo=_bool(body, "echo"),
        logprobs=_int(body, "logprobs", None, 0, MAX_LOGPROBS),
        include_usage=bool(stream_options.get("include_usage")))
    if req.include_usage is not True and "include_usage" in stream_options \
            and not isinstance(stream_options["include_usage"], bool):
        _bad("stream_options.include_usage must be true or false", "stream_options")
    return req


def _prompts(prompt, limits):
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(
            isinstance(p, int) and not isinstance(p, bool) for p in prompt):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(
            isinstance(p, str) or isinstance(p, list) and all(
                isinstance(i, int) and not isinstance(i, bool) for i in p) for p in prompt):
        prompts = list(prompt)
    else:
        _bad("prompt must be a string, a list of strings, a list of character ids, or a "
             "list of lists of ids", "prompt", "invalid_type")
    for p in prompts:
        if len(p) > limits.max_prompt:
            _bad(f"a prompt has {len(p)} characters, more than the limit {limits.max_prompt}",
                 "prompt", "context_length_exceeded")
    return prompts


# ---- responses --------------------------------------------------------------------------

def logprobs_body(entries, offset):
    """OpenAI's legacy logprobs object from [(token, logprob or None, {alt: lp})]."""
    tokens, lps, tops, offsets = [], [], [], []
    for tok, lp, top in entries:
        tokens.append(tok)
        lps.append(lp)
        tops.append(top)
        offsets.append(offset)
        offset += len(tok)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops,
            "text_offset": offsets}


def choice(index, text, finish_reason, logprobs=None):
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}


def completion(cid, model, choices, usage, created=None, fingerprint=None):
    return {"id": cid, "object": "text_completion", "created": created or int(time.time()),
            "model": model, "system_fingerprint": fingerprint, "choices": choices,
            "usage": usage}


def usage(prompt_chars, completion_chars):
    return {"prompt_tokens": prompt_chars, "completion_tokens": completion_chars,
            "total_tokens": prompt_chars + completion_chars}


def sse(obj):
    """One server-sent event: `data: <json>` and a blank line."""
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"
