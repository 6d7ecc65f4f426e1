"""charrnn serve for transducers and classifiers: POST /v1/transduce and /v1/classify,
called with httpx and curl, beside a language model in the same server; the answers
equal the Python API's; bad requests get OpenAI-shaped errors and the server keeps
serving; a busy model answers 429; the command starts, answers curl and stops on SIGTERM.
"""
import json
import shutil
import signal
import subprocess
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

import charrnn                                                    # noqa: E402
from charrnn.serve.protocol import Limits                       # noqa: E402
from test_joint_cli import run as toy_run, words                 # noqa: E402,F401
from test_serve import KEY, Served, model, start_cli            # noqa: E402,F401

from click.testing import CliRunner                             # noqa: E402
from charrnn.cli import main                                    # noqa: E402


@pytest.fixture(scope="module")
def g2p(toy_run):
    return toy_run[0]


@pytest.fixture(scope="module")
def lang(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf")
    rows = [("vowel" if w[0] in "aeo" else "other") + "\t" + w for w in words(400, 1)]
    (d / "clf.tsv").write_text("\n".join(rows) + "\n")
    r = CliRunner().invoke(main, ["train", str(d / "clf.tsv"), "--task", "classify",
                                  "--out", str(d / "run"), "--hidden", "16", "--embed", "8",
                                  "--max-steps", "60", "--max-minutes", "0", "--threads", "1",
                                  "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run"


@pytest.fixture(scope="module")
def server(g2p, lang, model):
    with Served({"g2p": str(g2p), "lang": str(lang), "tiny": model}, api_key=KEY) as s:
        yield s


def post(s, path, body, key=KEY):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(s.url + path, json=body, headers=headers, timeout=60)


def test_transduce_equals_the_python_api(server, g2p):
    t = charrnn.load_transducer(g2p)
    texts = words(12, 21)
    r = post(server, "/v1/transduce", {"model": "g2p", "input": texts, "beam": 4})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["object"] == "transduction" and d["model"] == "g2p"
    assert [x["index"] for x in d["data"]] == list(range(12))
    assert [x["input"] for x in d["data"]] == texts
    assert [x["output"] for x in d["data"]] == t.transduce(texts, 4)       # re-ranked
    r = post(server, "/v1/transduce", {"model": "g2p", "input": texts, "beam": 4,
                                       "joint": False})
    t.joint = None
    assert [x["output"] for x in r.json()["data"]] == t.transduce(texts, 4)
    assert [x["output"] for x in post(server, "/v1/transduce", {"model": "g2p", "input": texts})
            .json()["data"]] == t.transduce(texts)                          # greedy
    r = post(server, "/v1/transduce", {"model": "g2p", "input": "shoe", "nbest": 3})
    item, = r.json()["data"]
    want = t.nbest(["shoe"], 3)[0]
    assert [(o["output"], o["logprob"]) for o in item["outputs"]] == \
        [(o, round(lp, 6)) for o, lp in want]
    assert item["output"] == want[0][0]


def test_classify_equals_the_python_api(server, lang):
    c = charrnn.load_classifier(lang)
    texts = words(10, 22)
    d = post(server, "/v1/classify", {"model": "lang", "input": texts, "top": 2}).json()
    want = c.top(texts, 2)
    assert d["object"] == "classification" and d["model"] == "lang"
    for x, w, text in zip(d["data"], want, texts):
        assert x["input"] == text and x["label"] == w[0][0]
        assert [(y["label"], y["probability"]) for y in x["top"]] == \
            [(lab, round(p, 6)) for lab, p in w]
    one = post(server, "/v1/classify", {"model": "lang", "input": "echo"}).json()["data"][0]
    assert len(one["top"]) == 1 and one["label"] == c.predict("echo")


@pytest.mark.parametrize("path,body,status,param,code", [
    ("/v1/transduce", {"model": "lang", "input": "x"}, 400, "model", "wrong_model_kind"),
    ("/v1/classify", {"model": "g2p", "input": "x"}, 400, "model", "wrong_model_kind"),
    ("/v1/completions", {"model": "g2p", "prompt": "x"}, 400, "model", "wrong_model_kind"),
    ("/v1/transduce", {"model": "tiny", "input": "x"}, 400, "model", "wrong_model_kind"),
    ("/v1/transduce", {"model": "nope", "input": "x"}, 404, "model", "model_not_found"),
    ("/v1/transduce", {"model": "g2p"}, 400, "input", "missing_required_parameter"),
    ("/v1/transduce", {"model": "g2p", "input": ""}, 400, "input", "invalid_value"),
    ("/v1/transduce", {"model": "g2p", "input": []}, 400, "input", "invalid_type"),
    ("/v1/transduce", {"model": "g2p", "input": ["ab", None]}, 400, "input", "invalid_type"),
    ("/v1/transduce", {"model": "g2p", "input": ["a"] * 1025}, 400, "input", "invalid_value"),
    ("/v1/transduce", {"model": "g2p", "input": "a", "beam": 0}, 400, "beam", "invalid_value"),
    ("/v1/transduce", {"model": "g2p", "input": "a", "beam": "4"}, 400, "beam", "invalid_type"),
    ("/v1/transduce", {"model": "g2p", "input": "a", "joint": 1}, 400, "joint", "invalid_type"),
    ("/v1/transduce", {"model": "g2p", "input": "a", "temperature": 1}, 400, "temperature",
     "unknown_parameter"),
    ("/v1/classify", {"model": "lang", "input": "a", "top": 3}, 400, "top", "invalid_value"),
    ("/v1/classify", {"model": 3, "input": "a"}, 400, "model", "invalid_type"),
])
def test_bad_requests_get_openai_errors_and_the_server_goes_on(server, g2p, path, body,
                                                              status, param, code):
    r = post(server, path, body)
    assert r.status_code == status, r.text
    e = r.json()["error"]
    assert (e["param"], e["code"]) == (param, code) and e["message"]
    assert post(server, "/v1/transduce", {"model": "g2p", "input": "cab"}).status_code == 200


def test_key_models_list_and_raw_bodies(server):
    assert post(server, "/v1/transduce", {"model": "g2p", "input": "x"}, key=None).status_code == 401
    models = {m["id"]: m["charrnn"] for m in httpx.get(
        server.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()["data"]}
    assert {k: m["kind"] for k, m in models.items()} == {"g2p": "seq2seq", "lang": "classifier",
                                                         "tiny": "lm"}
    assert models["g2p"]["joint"] and models["g2p"]["endpoint"] == "/v1/transduce"
    assert models["lang"]["labels"] == ["other", "vowel"]
    r = httpx.post(server.url + "/v1/transduce", content=b"{not json",
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = post(server, "/v1/completions", {"model": "tiny", "prompt": "a", "max_tokens": 5})
    assert r.status_code == 200 and len(r.json()["choices"][0]["text"]) == 5


def test_curl_and_the_only_model_of_a_kind_by_default(server, g2p):
    curl = shutil.which("curl")
    assert curl, "curl is needed: apt-get install -y curl"
    out = subprocess.run([curl, "-s", "-X", "POST", server.url + "/v1/transduce", "-H",
                          f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                          "-d", '{"input": ["shoe", "bach"], "beam": 2}'],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    d = json.loads(out)
    assert d["model"] == "g2p"     # the only transducer: no "model" needed
    assert [x["output"] for x in d["data"]] == charrnn.load_transducer(g2p).transduce(
        ["shoe", "bach"], 2)


def test_a_busy_model_answers_429(g2p):
    t = charrnn.load_transducer(g2p)
    gate = threading.Event()
    slow = t.transduce

    def held(*a, **k):
        gate.wait(30)
        return slow(*a, **k)
    t.transduce = held
    with Served({"g2p": t}, limits=Limits(max_queue=0)) as s:
        first = {}
        thread = threading.Thread(target=lambda: first.update(r=post(s, "/v1/transduce",
                                                                      {"input": "cab"})))
        thread.start()
        for _ in range(200):
            if s.asgi.state.charrnn.task_waiting.get("g2p"):
                break
            time.sleep(0.01)
        r = post(s, "/v1/transduce", {"input": "cab"})
        gate.set()
        thread.join(30)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert first["r"].status_code == 200
        assert post(s, "/v1/transduce", {"input": "cab"}).status_code == 200


def test_the_command_serves_a_transducer_and_stops_on_sigterm(g2p):
    p, url = start_cli(str(g2p))
    try:
        r = httpx.post(url + "/v1/transduce", json={"input": "shoe", "beam": 3}, timeout=60)
        assert r.status_code == 200
        assert r.json()["data"][0]["output"] == charrnn.load_transducer(g2p).transduce(
            ["shoe"], 3)[0]
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read()
    assert "/v1/transduce" in err and "Traceback" not in err


def test_serving_page_examples_of_these_endpoints_run(g2p, lang):
    import re
    from test_serve import ROOT
    page = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```bash\n(curl .*?)```", page, re.S)
              if "/v1/transduce" in b or "/v1/classify" in b]
    assert len(blocks) == 2
    with Served({"g2p": str(g2p), "names": str(lang)}) as s:
        for block in blocks:
            out = subprocess.run(["bash", "-c", block.replace("http://127.0.0.1:8000", s.url)],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
            d = json.loads(out)
            assert d["object"] in ("transduction", "classification") and "error" not in d
            assert d["data"] and all(x["input"] for x in d["data"])
