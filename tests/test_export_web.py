"""charrnn export --format html / web: the WebAssembly runtime in a real browser (headless
Chromium over the DevTools pipe, tests/browser.py) writes the text `charrnn sample` writes
for the same seed; the ES module's ml5-style API; no request leaves the page; the shipped
.wasm is what its source builds to; one-line errors."""
import functools
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from browser import Browser, BrowserError, chromium_path
from charrnn.cli import main
from charrnn.io import checkpoint
from charrnn.model import CharRNN
from export_common import random_model, trained_run

REQUIRED = os.environ.get("CHARRNN_REQUIRE_TOOLS") == "1"
WEBRT = Path(charrnn.__file__).parent / "export" / "webrt"


def need(ok, msg):
    if not ok:
        pytest.fail(msg) if REQUIRED else pytest.skip(msg)


@pytest.fixture(scope="module")
def browser():
    need(chromium_path(), "chromium not installed (Debian: apt-get install -y chromium)")
    with Browser() as b:
        yield b


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def save(model, path):
    checkpoint.save_model(path, model.params, model.config, model.vocab,
                          info={"step": 7, "val_loss": 1.5, "best_val_loss": 1.25})
    return path


def sample_cli(ckpt, prime, seed, length, *opts):
    r = cli("sample", ckpt, "--prime", prime, "--seed", seed, "--length", length, *opts)
    assert r.exit_code == 0, r.output
    assert r.output.endswith("\n")
    return r.output[:-1]


def js_str(s):
    import json
    return json.dumps(s)


def fill_and_run(tab, prompt, seed, length, temperature=1.0, top_k=0, top_p=1.0):
    tab.eval(f"""(async () => {{
        await charrnnPage.ready;
        const set = (id, v) => document.getElementById(id).value = v;
        set("prompt", {js_str(prompt)}); set("seed", "{seed}"); set("length", "{length}");
        set("temperature", "{temperature}"); set("topk", "{top_k}"); set("topp", "{top_p}");
        await charrnnPage.generate();
    }})()""")
    return tab.eval("charrnnPage.last")


def export_page(tmp_path, ckpt, name, *opts):
    out = tmp_path / f"{name}.html"
    r = cli("export", ckpt, "--format", "html", "-o", out, *opts)
    assert r.exit_code == 0, r.output
    return out


# ---- the page writes charrnn sample's text -------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_page_text_equals_charrnn_sample_every_cell(browser, tmp_path, cell):
    ckpt = save(random_model(cell, 2, hidden=24, embed=16), tmp_path / "m.safetensors")
    tab = browser.open(export_page(tmp_path, ckpt, cell).as_uri() + "#autostart=0")
    try:
        for prompt, seed, opts in [("ROMEO:", 1, {}), ("", 12345678901234567890, {}),
                                   ("KING", 3, {"temperature": 0.7, "top_k": 5}),
                                   ("A", 4, {"top_p": 0.8}),
                                   ("To be", 5, {"temperature": 0})]:
            flags = [x for k, v in opts.items()
                     for x in ({"temperature": "--temp", "top_k": "--top-k",
                                "top_p": "--top-p"}[k], v)]
            want = sample_cli(ckpt, prompt, seed, 400, *flags)
            got = fill_and_run(tab, prompt, seed, 400, **opts)
            assert got["text"] == want, (prompt, seed, opts)
            assert tab.eval("document.getElementById('out').textContent") == want
        assert tab.requests == [tab.requests[0]] and tab.requests[0].startswith("file://")
    finally:
        browser.close_tab(tab)


def test_trained_run_page_equals_charrnn_sample_and_notes_its_training(browser, tmp_path):
    rd = trained_run()
    page = export_page(tmp_path, rd, "trained")
    tab = browser.open(page.as_uri() + "#autostart=0")
    try:
        for seed in [1, 2]:
            assert fill_and_run(tab, "KING:", seed, 1000)["text"] == \
                sample_cli(rd, "KING:", seed, 1000)
        note = tab.eval("document.getElementById('note').textContent")
        assert note.startswith("GRU 1x128, embedding 64, vocabulary ")
        assert "trained on shakespeare.txt · step 300 · validation loss " in note
    finally:
        browser.close_tab(tab)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_int8_page_equals_the_int8_c_program(browser, tmp_path, cell):
    """int8 weights change the text (not the quality): the reference is the C export's
    --int8 program, which reads the same int8 rows in the same order."""
    cc = shutil.which("cc")
    need(cc, "cc not installed (Debian: apt-get install -y gcc)")
    ckpt = save(random_model(cell, 2, hidden=24, embed=16), tmp_path / "m.safetensors")
    src = tmp_path / "m.c"
    assert cli("export", ckpt, "--format", "c", "--int8", "-o", src).exit_code == 0
    subprocess.run([cc, "-std=c99", "-O2", "-DCHARRNN_MAIN", str(src), "-lm", "-o",
                    str(tmp_path / "m")], check=True)
    tab = browser.open(export_page(tmp_path, ckpt, cell, "--int8").as_uri() + "#autostart=0")
    try:
        for prompt, seed in [("ROMEO:", 1), ("", 2)]:
            want = subprocess.run([str(tmp_path / "m"), "--prime", prompt, "--seed", str(seed),
                                   "--length", "400"], capture_output=True, check=True)
            got = fill_and_run(tab, prompt, seed, 400)
            assert got["text"] == want.stdout.decode()[:-1], (prompt, seed)
        # and the float page differs from it: the int8 weights were really used
        assert got["text"] != sample_cli(ckpt, prompt, seed, 400)
    finally:
        browser.close_tab(tab)


def test_non_ascii_vocabulary_and_prompt(browser, tmp_path):
    vocab = list("\n abcdeéλж—“”😀中文")
    m = CharRNN(dict(cell="gru", hidden=16, layers=1, embed=8, vocab_size=len(vocab)), vocab,
                seed=3)
    for p in m.params.values():
        p *= 2
    ckpt = save(m, tmp_path / "m.safetensors")
    tab = browser.open(export_page(tmp_path, ckpt, "u").as_uri() + "#autostart=0")
    try:
        for prompt in ["“λé😀中", ""]:
            want = sample_cli(ckpt, prompt, 9, 300)
            assert fill_and_run(tab, prompt, 9, 300)["text"] == want
        assert "😀" in want or "中" in want
    finally:
        browser.close_tab(tab)


def test_byte_level_model(browser, tmp_path):
    vocab = [chr(b) for b in range(256)]
    m = CharRNN(dict(cell="lstm", hidden=16, layers=1, embed=8, vocab_size=256,
                     encoding="bytes"), vocab, seed=5)
    ckpt = save(m, tmp_path / "m.safetensors")
    tab = browser.open(export_page(tmp_path, ckpt, "b").as_uri() + "#autostart=0")
    try:
        for prompt in ["Grüße, 世界", ""]:
            want = sample_cli(ckpt, prompt, 11, 300)
            got = fill_and_run(tab, prompt, 11, 300)["text"]
            assert got == want
        assert "\ufffd" in want      # random bytes: invalid UTF-8, replaced alike
    finally:
        browser.close_tab(tab)


def test_prompt_outside_the_vocabulary_is_an_error_in_the_page(browser, tmp_path):
    ckpt = save(random_model("gru", 1), tmp_path / "m.safetensors")
    tab = browser.open(export_page(tmp_path, ckpt, "g").as_uri() + "#autostart=0")
    try:
        last = fill_and_run(tab, "ROMEO€ü", 1, 10)
        msg = tab.eval("document.getElementById('error').textContent")
        assert last == {"error": msg}
        assert msg == ("the prompt has 2 characters outside the model's vocabulary: "
                       "\"€\" (U+20AC), \"ü\" (U+00FC)")
        for field, value, says in [("temperature", "-1", "temperature must be"),
                                   ("length", "1.5", "length must be"),
                                   ("seed", "-3", "randomSeed must be"),
                                   ("topp", "0", "topP must be")]:
            tab.eval(f"document.getElementById('{field}').value = '{value}'")
            tab.eval("charrnnPage.generate()")
            assert tab.eval("document.getElementById('error').textContent").startswith(says)
            tab.eval(f"document.getElementById('{field}').value = "
                     f"'{ {'temperature': 1, 'length': 10, 'seed': 1, 'topp': 1}[field]}'")
    finally:
        browser.close_tab(tab)


def test_page_streams_on_open_with_a_model_note(browser, tmp_path):
    ckpt = save(random_model("lstm", 2), tmp_path / "m.safetensors")
    page = export_page(tmp_path, ckpt, "open")
    tab = browser.open(page.as_uri() + "#seed=5&length=2000")
    try:
        tab.wait("charrnnPage.runs === 1")
        assert tab.eval("charrnnPage.last.text") == sample_cli(ckpt, "", 5, 2000, "--temp", 0.8)
        assert 0 < tab.eval("charrnnPage.firstChar") < 3000
        note = tab.eval("document.getElementById('note').textContent")
        assert note.startswith("LSTM 2x24, embedding 16, vocabulary 62 characters, 11.4k "
                               "parameters, float32 weights (0.05 MB)")
        assert "step 7" in note and "validation loss 1.2500 nats/char" in note
        assert len(tab.requests) == 1
        html = page.read_text()
        assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    finally:
        browser.close_tab(tab)


# ---- the --format web folder: the ES module and its ml5-style API ---------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def served(tmp_path):
    """A local HTTP server over tmp_path; yields its base URL."""
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_es_module_api(browser, tmp_path, served):
    m = random_model("gru", 2)
    ckpt = save(m, tmp_path / "m.safetensors")
    r = cli("export", ckpt, "--format", "web", "-o", tmp_path / "site")
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(tmp_path / "site")) == ["charrnn.js", "charrnn.wasm", "index.html",
                                                      "model.bin"]
    assert (tmp_path / "site" / "charrnn.wasm").read_bytes() == \
        (WEBRT / "charrnn.wasm").read_bytes()
    tab = browser.open(served + "site/index.html")
    try:
        got = tab.eval("""(async () => {
            const charrnn = await import("./charrnn.js");
            const m = await charrnn.load("./");
            const out = {};
            out.gen = (await m.generate({seed: "ROMEO:", length: 300, temperature: 0.8,
                                         randomSeed: 42})).sample;
            out.gen2 = (await m.generate({prompt: "", length: 200, randomSeed: "18446744073709551615", temperature: 1,
                                          topK: 4})).sample;
            let s = "";
            for await (const piece of m.stream({seed: "KING", length: 250, randomSeed: 3, temperature: 1}))
                s += piece;
            out.stream = s;
            // feed / predict / reset, as an ml5 sketch does it
            m.reset(); m.randomSeed(42);
            await m.feed("ROMEO:");
            let fp = "";
            for (let i = 0; i < 300; i++) {
                const p = await m.predict(0.8);
                fp += p.sample; await m.feed(p.sample);
            }
            out.feedPredict = fp;
            m.reset(); await m.feed("ROMEO");
            const p = await m.predict(1.0);
            out.probs = p.probabilities; out.vocab = m.vocab; out.vocabSize = m.vocabSize;
            out.again = (await m.predict(1.0)).probabilities;   // the state did not move
            out.defaults = (await m.generate({seed: "A", randomSeed: 8})).sample;
            try { await m.generate({seed: "ROMEO€"}); } catch (e) { out.err = e.message; }
            out.simd = charrnn.simdSupported();
            const validate = WebAssembly.validate;
            WebAssembly.validate = () => false;       // a browser without SIMD128
            try { await charrnn.load("./"); } catch (e) { out.err4 = e.message; }
            WebAssembly.validate = validate;
            try { await m.generate({temperature: "hot"}); } catch (e) { out.err2 = e.message; }
            try { await charrnn.load("./nothing/"); } catch (e) { out.err3 = e.message; }
            return out;
        })()""")
        assert "ROMEO:" + got["gen"] == sample_cli(ckpt, "ROMEO:", 42, 300, "--temp", 0.8)
        assert got["gen2"] == sample_cli(ckpt, "", 2**64 - 1, 200, "--top-k", 4)
        assert got["stream"] == sample_cli(ckpt, "KING", 3, 250)
        assert got["feedPredict"] == got["gen"]
        # ml5's defaults: length 20, temperature 0.5
        assert "A" + got["defaults"] == sample_cli(ckpt, "A", 8, 20, "--temp", 0.5)
        assert got["vocab"] == list(m.vocab) and got["vocabSize"] == len(m.vocab)
        assert [p["char"] for p in got["probs"]] == list(m.vocab)      # ml5's shape
        want = m.probe("ROMEO").probs[-1]
        np.testing.assert_allclose([p["probability"] for p in got["probs"]], want, rtol=1e-4,
                                   atol=1e-6)
        assert got["again"] == got["probs"]
        assert got["err"] == ("the prompt has a character outside the model's vocabulary: "
                              "\"€\" (U+20AC)")
        assert got["err2"] == "temperature must be a number >= 0 (0 = greedy), got hot"
        assert got["simd"] is True
        assert got["err4"].startswith("this browser cannot run WebAssembly SIMD128")
        assert got["err3"].startswith("cannot fetch the runtime") or \
            got["err3"].startswith("cannot fetch the weights")
        assert all(u.startswith(served) for u in tab.requests), tab.requests
    finally:
        browser.close_tab(tab)


def test_index_html_generates(browser, tmp_path, served):
    ckpt = save(random_model("rnn", 1), tmp_path / "m.safetensors")
    assert cli("export", ckpt, "--format", "web", "-o", tmp_path / "w", "--int8").exit_code == 0
    tab = browser.open(served + "w/index.html")
    try:
        tab.eval("document.getElementById('prompt').value = 'KING'")
        tab.wait("document.getElementById('go').onclick !== null")
        tab.eval("document.getElementById('go').click()")
        tab.wait("document.getElementById('out').textContent.length >= 504")
        assert tab.eval("document.getElementById('out').textContent").startswith("KING")
    finally:
        browser.close_tab(tab)


# ---- the shipped runtime is its source, built -----------------------------------------------

def test_shipped_wasm_is_what_the_source_builds(tmp_path):
    from charrnn.export import web_build
    need(shutil.which("clang") and shutil.which("wasm-ld"),
         "clang and wasm-ld not installed (Debian: apt-get install -y clang lld wasi-libc)")
    need(Path("/usr/lib/wasm32-wasi/libc.a").exists() or os.environ.get("WASI_SYSROOT"),
         "wasi-libc not installed (Debian: apt-get install -y wasi-libc)")
    out = web_build.build(tmp_path / "a.wasm")
    assert Path(out).read_bytes() == (WEBRT / "charrnn.wasm").read_bytes(), \
        "the shipped charrnn.wasm is stale: run python -m charrnn.export.web_build"
    assert web_build.build(tmp_path / "b.wasm").read_bytes() == Path(out).read_bytes()
    data = Path(out).read_bytes()
    assert b"\x00asm" == data[:4] and b"producers" not in data and b"/tmp" not in data


# ---- one-line errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["html", "web"])
def test_not_a_model_is_a_one_line_error(tmp_path, fmt):
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    for bad in [tmp_path / "junk.safetensors", tmp_path]:
        r = cli("export", bad, "--format", fmt, "-o", tmp_path / "out")
        assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
        assert r.output.startswith("Error: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["html", "web"])
@pytest.mark.parametrize("where", ["missing-dir", "under-a-file", "a-directory"])
def test_unwritable_output(tmp_path, fmt, where):
    ckpt = save(random_model("gru", 1), tmp_path / "m.safetensors")
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    out = {"missing-dir": tmp_path / "nope" / "m.out", "under-a-file": tmp_path / "file" / "m",
           "a-directory": tmp_path / "dir"}[where]
    if fmt == "web" and where == "a-directory":
        out = tmp_path / "file"        # a folder is what web writes: a file is the error
    r = cli("export", ckpt, "--format", fmt, "-o", out)
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert r.output.startswith(f"Error: cannot write {out}: "), r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file", "m.safetensors"]
    assert list((tmp_path / "dir").iterdir()) == []


def test_prefix_is_for_c_only(tmp_path):
    ckpt = save(random_model("gru", 1), tmp_path / "m.safetensors")
    r = cli("export", ckpt, "--format", "html", "--prefix", "x", "-o", tmp_path / "m.html")
    assert r.exit_code == 2 and "--prefix applies to --format c only" in r.output


def test_weights_file_is_checked_by_the_runtime(browser, tmp_path, served):
    """A truncated model.bin is refused by cr_load (bounds-checked offsets), not read past."""
    ckpt = save(random_model("lstm", 2), tmp_path / "m.safetensors")
    assert cli("export", ckpt, "--format", "web", "-o", tmp_path / "t").exit_code == 0
    blob = (tmp_path / "t" / "model.bin").read_bytes()
    (tmp_path / "t" / "model.bin").write_bytes(blob[:len(blob) // 2])
    tab = browser.open(served + "t/index.html")
    try:
        with pytest.raises(BrowserError, match="cannot load the weights"):
            tab.eval("import('./charrnn.js').then((c) => c.load('./'))")
    finally:
        browser.close_tab(tab)


def test_stop_button_and_the_python_api(browser, tmp_path):
    from charrnn.export import export_html, export_web
    m = random_model("gru", 2)
    ckpt = save(m, tmp_path / "m.safetensors")
    page = export_html(m, tmp_path / "api.html", int8=False)     # a CharRNN, not a path
    assert export_web(m, tmp_path / "site") == tmp_path / "site"
    assert sorted(os.listdir(tmp_path / "site"))[0] == "charrnn.js"
    tab = browser.open(Path(page).as_uri() + "#autostart=0&seed=4&length=100000000&temperature=1")
    try:
        tab.eval("charrnnPage.ready.then(() => { window.run = charrnnPage.generate(); })")
        tab.wait("document.getElementById('out').textContent.length > 2000")
        tab.eval("document.getElementById('stop').click()")
        tab.eval("window.run")
        last = tab.eval("charrnnPage.last")
        assert last["stopped"] and 2000 < len(last["text"]) < 10**8
        assert last["text"] == sample_cli(ckpt, "", 4, len(last["text"]))
    finally:
        browser.close_tab(tab)
