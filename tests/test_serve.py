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


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_rows_joining_and_leaving_give_each_the_samplers_text(cell):
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
    env = dict(os.environ, PYTHONPATH=str(ROOT))
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
