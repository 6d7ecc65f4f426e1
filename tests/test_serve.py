"""charrnn serve: the compiled batch (charrnn._batch), the scheduler, the OpenAI API (with
the official `openai` client and curl), the caps and the key, disconnects, a fuzz of
request bodies, SIGTERM, live reload, and the playground in headless Chromium.

Tiny random-weight models (tests/export_common.random_model); every server binds
127.0.0.1 on a free port and is shut down by its test.
"""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from charrnn import _batch                                    # noqa: E402
from charrnn.generate import sampler as S                      # noqa: E402
from charrnn.io.checkpoint import save_model                   # noqa: E402
from charrnn.serve import app as make_app                      # noqa: E402
from charrnn.serve.batcher import Engine, Job, Scheduler       # noqa: E402
from charrnn.serve.protocol import Limits                      # noqa: E402
from conftest import child_env                                  # noqa: E402
from export_common import random_model                         # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = "test-key"


def save_run(model, run):
    run.mkdir(parents=True, exist_ok=True)
    for f in ("model.safetensors", "best.safetensors"):
        save_model(run / f, model.params, model.config, model.vocab)
    return run


@pytest.fixture(scope="module")
def model():
    return random_model("gru", 2)


@pytest.fixture(scope="module")
def run(model, tmp_path_factory):
    return save_run(model, tmp_path_factory.mktemp("serve") / "tiny")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A uvicorn server in a thread, on 127.0.0.1 and a free port, stopped on exit."""

    def __init__(self, models, **options):
        self.asgi = make_app(models, **options)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.asgi, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.server.install_signal_handlers = lambda: None   # uvicorn < 0.29
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.asgi.state.charrnn.scheduler.finish_all()
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive()

    @property
    def scheduler(self):
        return self.asgi.state.charrnn.scheduler


@pytest.fixture(scope="module")
def server(model):
    with Served({"tiny": model}, api_key=KEY) as s:
        yield s


def client(s):
    return openai.OpenAI(base_url=s.url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def post(s, body, key=KEY, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(s.url + "/v1/completions", json=body, headers=headers, timeout=30, **kw)


# ---- the compiled batch ---------------------------------------------------------------

def engine(model, capacity=8):
    return Engine(model, capacity)


@pytest.fixture(params=["gemm", "gemv"])
def product(request):
    """Both ways a batch multiplies: one GEMM for all rows, or one GEMV per row."""
    old = _batch.set_gemv_rows(1 if request.param == "gemm" else 1000)
    yield request.param
    _batch.set_gemv_rows(old)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_rows_joining_and_leaving_give_each_the_samplers_text(cell, product):
    # rows join at different steps and leave early, each with its own options and seed
    m = random_model(cell, 2)
    smp = S.Sampler(m.params, m.config, m.vocab)
    e = engine(m, 4)
    asks = [("ROMEO:", 3, 0, 1.0, None, None, 120), ("The ", 4, 1, 0.7, 5, None, 60),
            ("a", 5, 0, 1.3, None, 0.9, 90), ("", 6, 0, 0.0, None, None, 40),
            ("Hi", 7, 2, 0.9, 3, 0.8, 70)]
    jobs, sched = [], Scheduler(steps=3)
    sched.add(e)
    for k, (p, seed, j, t, tk, tp, n) in enumerate(asks):
        ids, text = S.encode_text(p, m.vocab, "utf-8").astype(np.int32), p
        if len(ids) == 0:
            ids = np.array([smp._start], np.int32)
        job = Job(e, ids, text, seed=seed, stream=j, temperature=t, top_k=tk, top_p=tp,
                  max_tokens=n, events=[], index=k)
        jobs.append(job)
        sched.submit(job)
        sched._admit()                   # one joins, a few steps pass, the next joins
        if k < 4:
            sched._step(e, 7)
    assert sched.peak == 4 and len(sched.waiting) == 1   # capacity 4: the fifth waits
    while e.jobs or sched.waiting:
        sched._admit()
        sched._step(e, 5)
    for job, (p, seed, j, t, tk, tp, n) in zip(jobs, asks):
        want = smp.generate(p, n, t, tk, tp, seed, num_samples=j + 1)
        want = want if isinstance(want, str) else want[j]
        got = p + "".join(ev[2] for ev in job.events if ev[1] == "text")
        assert got == want and job.events[-1][1:] == ("done", "length")


def test_logprobs_are_the_models_own_log_softmax(model):
    e = engine(model, 2)
    text = "ROMEO: a"
    ids = S.encode_text(text, model.vocab, "utf-8").astype(np.int32)
    e.batch.join(ids, 1, 0, 1.0, None, None, 5)
    out = [np.zeros((2, 20), np.int32), np.zeros((2, 20), np.float32),
           np.zeros((2, 20, 5), np.int32), np.zeros((2, 20, 5), np.float32)]
    e.batch.step(*out, 20)
    made = text + "".join(model.vocab[i] for i in out[0][0])
    probs = model.probe(made).probs             # (T, V): what follows each character
    for t in range(20):
        p = probs[len(text) - 1 + t]
        assert out[1][0, t] == pytest.approx(np.log(p[out[0][0, t]]), abs=2e-4)
        top = np.argsort(-p, kind="stable")[:5]
        np.testing.assert_array_equal(out[2][0, t], top)
        np.testing.assert_allclose(out[3][0, t], np.log(p[top]), atol=2e-4)


def test_leave_moves_the_last_row_and_its_state(model):
    e = engine(model, 3)
    for k in range(3):
        e.batch.join(np.array([k + 1, k + 2], np.int32), k, 0, 1.0, None, None)
    h2 = e.batch.state(2)
    assert e.batch.leave(0) == 2 and e.batch.rows == 2
    np.testing.assert_array_equal(e.batch.state(0)[0], h2[0])
    assert e.batch.leave(1) == -1 and e.batch.rows == 1
    with pytest.raises(ValueError):
        e.batch.leave(1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        e.batch.join(np.array([999], np.int32), 0, 0, 1.0, None, None)


# ---- the API through the official client ------------------------------------------------

def test_openai_client_completions(server, model):
    c = client(server)
    r = c.completions.create(model="tiny", prompt="ROMEO:", max_tokens=80, seed=5,
                             temperature=0.8, n=3)
    want = model.generate("ROMEO:", 80, 0.8, seed=5, num_samples=3)
    assert [ch.text for ch in r.choices] == [w[len("ROMEO:"):] for w in want]
    assert r.usage.prompt_tokens == 6 and r.usage.completion_tokens == 240
    assert {ch.finish_reason for ch in r.choices} == {"length"}
    # stop: the text ends before it, as OpenAI's does
    r = c.completions.create(model="tiny", prompt="ROMEO:", max_tokens=200, seed=5, stop=["e", "zz"])
    full = model.generate("ROMEO:", 200, seed=5, stop=["e", "zz"])[len("ROMEO:"):]
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text + ("zz" if full.endswith("zz") else "e") == full
    # echo, logprobs, top_k and top_p
    r = c.completions.create(model="tiny", prompt="ROMEO:", max_tokens=30, seed=2, echo=True,
                             logprobs=3, top_p=0.9, extra_body={"top_k": 10})
    ch = r.choices[0]
    assert ch.text == model.generate("ROMEO:", 30, seed=2, top_k=10, top_p=0.9)
    lp = ch.logprobs
    assert len(lp.tokens) == len(ch.text) and lp.token_logprobs[:6] == [None] * 6
    assert all(v < 0 for v in lp.token_logprobs[6:]) and len(lp.top_logprobs[10]) == 3
    assert lp.text_offset == list(range(len(ch.text)))
    assert [m.id for m in c.models.list().data] == ["tiny"]


def test_openai_client_streaming(server, model):
    c = client(server)
    chunks = list(c.completions.create(model="tiny", prompt=["The ", "A"], max_tokens=150,
                                       seed=9, stream=True, n=2, logprobs=1,
                                       stream_options={"include_usage": True}))
    texts = {}
    for ch in chunks[:-1]:
        for x in ch.choices:
            texts[x.index] = texts.get(x.index, "") + x.text
            if x.text:
                assert "".join(x.logprobs.tokens) == x.text
    assert chunks[-1].usage.completion_tokens == 600 and chunks[-1].choices == []
    for i, p in enumerate(["The ", "A"]):
        want = model.generate(p, 150, seed=9, num_samples=2)
        assert [texts[2 * i], texts[2 * i + 1]] == [w[len(p):] for w in want]
    assert len(chunks) > 10                      # it streamed, in pieces


def test_requests_with_different_options_share_the_batch(model):
    # 12 concurrent clients, each its own options: the texts are each one's own, and
    # the scheduler stepped several of them together
    asks = [dict(prompt=p, max_tokens=300, seed=s, temperature=t, top_k=k, top_p=tp)
            for p, s, t, k, tp in [("ROMEO:", 1, 0.5, None, None), ("The", 2, 1.2, 4, None),
                                   ("a", 3, 0.0, None, None), ("Be", 4, 0.9, None, 0.8)] * 3]

    async def go(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as h:
            rs = await asyncio.gather(*(h.post("/v1/completions", json=a) for a in asks))
        return [r.json()["choices"][0]["text"] for r in rs]

    with Served({"tiny": model}, limits=Limits(max_batch=8)) as s:
        texts = asyncio.run(go(s.url))
        assert 2 <= s.scheduler.peak <= 8
    for a, text in zip(asks, texts):
        assert a["prompt"] + text == model.generate(a["prompt"], 300, a["temperature"],
                                                    a["top_k"], a["top_p"], a["seed"])


def test_seed_gives_the_text_charrnn_sample_gives(server, run):
    env = child_env()
    out = subprocess.run([sys.executable, "-m", "charrnn.cli", "sample", str(run), "--seed", "11",
                          "--prime", "ROMEO:", "--length", "300", "--temp", "0.7",
                          "--top-k", "20"], capture_output=True, text=True, env=env,
                         check=True).stdout
    r = post(server, dict(prompt="ROMEO:", max_tokens=300, seed=11, temperature=0.7, top_k=20,
                          echo=True))
    assert r.json()["choices"][0]["text"] + "\n" == out


def test_curl_sees_server_sent_events(server):
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is needed for this test")
    out = subprocess.run([curl, "-sN", server.url + "/v1/completions", "-H",
                          f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                          "-d", json.dumps(dict(prompt="Hi", max_tokens=40, seed=1, stream=True))],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    events = out.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    bodies = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert all(b["object"] == "text_completion" for b in bodies)
    assert bodies[-1]["choices"][0]["finish_reason"] == "length"
    assert len("".join(b["choices"][0]["text"] for b in bodies)) == 40


# ---- safety: key, caps, errors, disconnects -------------------------------------------

def test_api_key_is_required_on_the_api_only(server):
    r = post(server, dict(prompt="a", max_tokens=2), key=None)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert post(server, dict(prompt="a", max_tokens=2), key="wrong").status_code == 401
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert "charrnn playground" in httpx.get(server.url + "/").text
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="nope", max_retries=0) \
            .completions.create(model="tiny", prompt="a", max_tokens=1)


@pytest.mark.parametrize("body, status, param, words", [
    ({"prompt": "ROMEO:€✓", "max_tokens": 3}, 400, "prompt", "'€' (U+20AC), '✓'"),
    ({"prompt": "a", "max_tokens": 0}, 400, "max_tokens", "[1,"),
    ({"prompt": "a", "max_tokens": "9"}, 400, "max_tokens", "integer"),
    ({"prompt": "a", "temperature": -1}, 400, "temperature", ">= 0"),
    ({"prompt": "a", "top_p": 0}, 400, "top_p", "(0, 1]"),
    ({"prompt": "a", "n": 10_000}, 400, "n", "[1, 16]"),
    ({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "up to 4"),
    ({"prompt": "a", "seed": -1}, 400, "seed", "[0,"),
    ({"prompt": "a", "logprobs": 6}, 400, "logprobs", "[0, 5]"),
    ({"prompt": "a", "frobnicate": 1}, 400, "frobnicate", "unknown field"),
    ({"prompt": "a", "presence_penalty": 1.5}, 400, "presence_penalty", "not supported"),
    ({"prompt": {"a": 1}}, 400, "prompt", "must be a string"),
    ({"prompt": [0, 10_000]}, 400, "prompt", "outside the vocabulary"),
    ({"prompt": "a", "model": "other"}, 404, "model", "does not exist"),
    ([1, 2], 400, None, "JSON object"),
])
def test_bad_requests_get_openai_shaped_errors(server, body, status, param, words):
    r = post(server, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param and words in err["message"]


def test_bad_json_wrong_method_and_unknown_path(server):
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    r = httpx.post(server.url + "/v1/completions", content=b'{"prompt": ', headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.get(server.url + "/v1/completions", headers=h)
    assert r.status_code == 405 and "error" in r.json()
    assert httpx.get(server.url + "/v2/nothing").json()["error"]["code"] == "not_found"


def test_caps_body_size_and_busy_server(model):
    limits = Limits(max_body=2000, max_batch=1, max_queue=0, max_tokens=10**7)
    with Served({"tiny": model}, limits=limits) as s:
        r = httpx.post(s.url + "/v1/completions", json={"prompt": "a" * 3000})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        with httpx.stream("POST", s.url + "/v1/completions", timeout=30,
                          json=dict(prompt="a", max_tokens=10**7, stream=True)) as long:
            lines = long.iter_lines()      # kept: a dropped iterator closes the connection
            next(lines)                    # it holds the only row for a minute
            r = httpx.post(s.url + "/v1/completions", json=dict(prompt="a", max_tokens=5))
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["type"] == "rate_limit_exceeded"
        # the stream's client went away: its row is free within a step
        steps = s.scheduler.stepped
        for _ in range(100):
            if s.scheduler.in_flight() == 0:
                break
            time.sleep(0.02)
        assert s.scheduler.in_flight() == 0 and s.scheduler.stepped - steps < 10**6
        assert httpx.post(s.url + "/v1/completions",
                          json=dict(prompt="a", max_tokens=5)).status_code == 200


def test_unknown_characters_can_be_skipped(model):
    with Served({"tiny": model}, unknown="skip") as s:
        r = httpx.post(s.url + "/v1/completions", json=dict(prompt="RO€MEO:", max_tokens=20,
                                                            seed=1, echo=True))
        assert r.json()["choices"][0]["text"] == model.generate("ROMEO:", 20, seed=1)


def test_fuzzed_request_bodies_get_a_completion_or_a_json_error(model):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=False), st.text(max_size=8))
    values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) |
                          st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=6)
    fields = st.sampled_from(["model", "prompt", "max_tokens", "temperature", "top_p", "top_k",
                              "n", "stop", "seed", "stream", "logprobs", "echo", "user",
                              "best_of", "stream_options", "x"])
    bodies = st.dictionaries(fields, values | st.integers(0, 40), max_size=8) | values
    seen = set()
    with Served({"tiny": model}, limits=Limits(max_tokens=40, max_n=3)) as s, \
            httpx.Client(base_url=s.url, timeout=30) as h:
        @hypothesis.settings(max_examples=150, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(bodies)
        def check(body):
            r = h.post("/v1/completions", content=json.dumps(body))
            seen.add(r.status_code)
            assert r.status_code in (200, 400, 404), r.text
            if r.headers["content-type"].startswith("text/event-stream"):
                assert r.text.endswith("data: [DONE]\n\n")
            elif r.status_code == 200:
                assert r.json()["object"] == "text_completion"
            else:
                assert set(r.json()["error"]) == {"message", "type", "param", "code"}

        check()
        assert h.get("/health").json()["status"] == "ok" and s.scheduler.in_flight() == 0
    assert 400 in seen


# ---- the command: SIGTERM, live reload ------------------------------------------------

def start_cli(*args):
    port = free_port()
    env = child_env()
    p = subprocess.Popen([sys.executable, "-m", "charrnn.cli", "serve", *args, "--port",
                          str(port), "--log-level", "warning"], env=env,
                         stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/health").status_code == 200:
                return p, url
        except httpx.TransportError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError(p.stderr.read())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_streams_cleanly_and_exits_0(run, sig):
    p, url = start_cli(str(run))
    try:
        with httpx.stream("POST", url + "/v1/completions", timeout=30,
                          json=dict(prompt="a", max_tokens=8192, stream=True)) as r:
            lines = r.iter_lines()
            next(lines)
            p.send_signal(sig)
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        assert json.loads(rest[-2][6:])["choices"][0]["finish_reason"] == "length"
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "Traceback" not in p.stderr.read()


def test_watch_swaps_in_new_weights_between_steps(tmp_path):
    old, new = random_model("gru", 1, seed=1), random_model("gru", 1, seed=2)
    rundir = save_run(old, tmp_path / "live")
    with Served([str(rundir)], watch=0.05, limits=Limits(max_tokens=8192)) as s:
        with httpx.stream("POST", s.url + "/v1/completions", timeout=30,
                          json=dict(prompt="ROMEO:", max_tokens=3000, seed=4, stream=True)) as r:
            lines = r.iter_lines()
            first = next(lines)
            save_run(new, rundir)                   # as training does: atomic renames
            for _ in range(200):
                if s.asgi.state.charrnn.models["live"].version == 1:
                    break
                time.sleep(0.02)
            after = httpx.post(s.url + "/v1/completions",
                               json=dict(prompt="ROMEO:", max_tokens=50, seed=4)).json()
            text = "".join(json.loads(x[6:])["choices"][0]["text"]
                           for x in [first, *lines] if x.startswith("data: {"))
    assert text == old.generate("ROMEO:", 3000, seed=4)[6:]           # in flight: old weights
    assert after["choices"][0]["text"] == new.generate("ROMEO:", 50, seed=4)[6:]
    assert after["system_fingerprint"].endswith("-v1")


# ---- the playground ---------------------------------------------------------------------

def test_playground_streams_coloured_text_in_headless_chromium(server, model):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("headless Chromium is needed for this test")
    url = (f"{server.url}/?prompt=ROMEO%3A&max_tokens=60&seed=3&temperature=0.8&key={KEY}"
           "&autorun=1")
    dom = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                          "--no-first-run", "--user-data-dir=" + str(Path(os.environ.get(
                              "TMPDIR", "/tmp")) / f"charrnn-chromium-{os.getpid()}"),
                          "--virtual-time-budget=15000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=90).stdout
    assert 'data-done="1"' in dom, dom[-2000:]
    import html
    import re
    spans = re.findall(r'<span class="p"[^>]*title="([^"]*)"[^>]*>([^<]*)</span>', dom)
    assert len(spans) == 60 and "alternatives" in html.unescape(spans[0][0])
    text = "".join(html.unescape(s) for _, s in spans)
    assert "ROMEO:" + text == model.generate("ROMEO:", 60, 0.8, seed=3)


# ---- the docs page's examples, run --------------------------------------------------------

def test_serving_page_examples_run(model):
    import re
    page = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    with Served({"tiny": model}) as s:
        def local(code):
            return (code.replace("http://127.0.0.1:8000", s.url)
                    .replace("shakespeare-20260101-120000", "tiny"))

        for block in re.findall(r"```bash\n(curl .*?)```", page, re.S):
            if "/v1/completions" not in block:   # transduce, classify: test_serve_tasks.py
                continue
            out = subprocess.run(["bash", "-c", local(block)], capture_output=True, text=True,
                                 timeout=60, check=True).stdout
            assert '"text_completion"' in out and "error" not in out
        python = re.findall(r"```python\n(.*?)```", page, re.S)
        exec(compile(local(python[0]), "serving.md", "exec"), {})


def test_watch_follows_a_real_training_run(tmp_path):
    import charrnn
    corpus = tmp_path / "c.txt"
    corpus.write_text((ROOT / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")[:20000],
                      encoding="utf-8")
    run = tmp_path / "run"
    small = dict(quiet=True, threads=1, max_minutes=0, eval_every=10)
    charrnn.train(str(corpus), out=str(run), cell="gru", hidden=16, layers=1, embed=8,
                  max_steps=10, val_frac=0.1, seq_len=16, batch_size=4, **small)
    with Served([str(run)], watch=0.05) as s:
        served = s.asgi.state.charrnn.models["run"]
        code = (f"import charrnn; charrnn.train({str(corpus)!r}, out={str(run)!r}, resume=True, "
                f"max_steps=300, **{small!r})")
        subprocess.run([sys.executable, "-c", code], env=child_env(),
                       check=True, timeout=120)
        final = charrnn.load(str(run), best=True)
        for _ in range(200):                  # the last checkpoint is picked up too
            r = httpx.post(s.url + "/v1/completions", json=dict(prompt="T", max_tokens=80,
                                                                seed=1, echo=True)).json()
            if r["choices"][0]["text"] == final.generate("T", 80, seed=1):
                break
            time.sleep(0.05)
        assert r["choices"][0]["text"] == final.generate("T", 80, seed=1)
        assert served.version >= 1 and r["system_fingerprint"] == f"charrnn-run-v{served.version}"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failed_batch_thread_is_a_500_not_a_hang(model):
    # the thread re-raises (its traceback reaches the server's log); clients get 500s
    with Served({"tiny": model}) as s:
        def boom(*a):
            raise RuntimeError("boom")
        s.scheduler._step = boom
        r = httpx.post(s.url + "/v1/completions", json=dict(prompt="a", max_tokens=5), timeout=30)
        assert r.status_code == 500 and "boom" in r.json()["error"]["message"]
        r = httpx.post(s.url + "/v1/completions", json=dict(prompt="a", max_tokens=5), timeout=30)
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert httpx.get(s.url + "/health").json()["status"] == "error"
