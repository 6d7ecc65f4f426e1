"""The web exports: one self-contained HTML page (--format html), or a folder to drop
into a site (--format web): charrnn.js (an ES module with ml5.js CharRNN's API),
charrnn.wasm (the runtime, shipped prebuilt: see web_build.py), model.bin (the weights,
web_weights.py) and a minimal index.html.

The page has no external reference: the runtime, the wasm and the weights are inside it
(base64), and its Content-Security-Policy (default-src 'none') forbids the browser any
request, so it opens from file:// and works offline.
"""
import base64
import html
import os
import re
from pathlib import Path

from charrnn.errors import ExportError
from charrnn.export.web_weights import web_model

WEBRT = Path(__file__).resolve().parent / "webrt"


def runtime_files():
    """(charrnn.js text, charrnn.wasm bytes) as shipped in the package."""
    try:
        return (WEBRT / "charrnn.js").read_text(encoding="utf-8"), \
            (WEBRT / "charrnn.wasm").read_bytes()
    except OSError as e:
        raise ExportError(f"the web runtime is missing from the package ({e.filename}): "
                          "reinstall charrnn") from None


def note_of(model, info=None, int8=False, nbytes=None):
    """One line about the model, for the page: cell and sizes, weights, training."""
    c = model.cfg
    n = sum(p.size for p in model.params.values())
    params = f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"
    from charrnn.data.text import BYTES, normalize_encoding
    unit = "bytes" if normalize_encoding(c.encoding) == BYTES else "characters"
    parts = [f"{c.cell.upper()} {c.layers}x{c.hidden}, embedding {c.embed}, "
             f"vocabulary {c.vocab_size} {unit}, {params} parameters, "
             f"{'int8' if int8 else 'float32'} weights"
             + (f" ({nbytes / 1e6:.2f} MB)" if nbytes else "")]
    info = info or {}
    if info.get("corpus"):
        parts.append(f"trained on {info['corpus']}")
    if info.get("step") is not None:
        parts.append(f"step {info['step']:,}")
    val = info.get("best_val_loss", info.get("val_loss"))
    if isinstance(val, (int, float)):
        parts.append(f"validation loss {val:.4f} nats/char")
    return " · ".join(parts)


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def page_html(model, int8=False, info=None, title=None):
    """The self-contained page (str)."""
    js, wasm = runtime_files()
    blob = web_model(model, int8, info)
    runtime = re.sub(r"^export ", "", js, flags=re.M)
    if "</script" in runtime.lower():
        raise ExportError("the web runtime contains '</script': cannot inline it")
    title = title or f"charrnn: {model.cfg.cell.upper()} {model.cfg.layers}x{model.cfg.hidden}"
    note = note_of(model, info, int8, len(blob))
    text = (WEBRT / "page.html").read_text(encoding="utf-8")
    for key, value in (("@TITLE@", html.escape(title)), ("@NOTE@", html.escape(note)),
                       ("@RUNTIME@", runtime), ("@WASM@", _b64(wasm)),
                       ("@MODEL@", _b64(blob))):
        text = text.replace(key, value)
    return text


INDEX = """<!DOCTYPE html>
<html lang="en">
<meta charset="utf-8">
<title>{title}</title>
<!-- Serve this folder (python3 -m http.server) and open it: modules and fetch need http. -->
<p>{note}</p>
<p><input id="prompt" value="" placeholder="prompt"> <button id="go">Generate</button></p>
<pre id="out"></pre>
<script type="module">
import * as charrnn from "./charrnn.js";
const m = await charrnn.load("./");
document.getElementById("go").onclick = async () => {{
  const out = document.getElementById("out");
  out.textContent = "";
  try {{
    for await (const piece of m.stream({{seed: document.getElementById("prompt").value,
                                        length: 500, temperature: 0.8}}))
      out.textContent += piece;
  }} catch (e) {{ out.textContent = e.message; }}
}};
</script>
</html>
"""


def web_folder(model, out_dir, int8=False, info=None):
    """{file name: bytes} of the --format web folder."""
    js, wasm = runtime_files()
    blob = web_model(model, int8, info)
    title = f"charrnn: {model.cfg.cell.upper()} {model.cfg.layers}x{model.cfg.hidden}"
    index = INDEX.format(title=html.escape(title),
                         note=html.escape(note_of(model, info, int8, len(blob))))
    return {"charrnn.js": js.encode("utf-8"), "charrnn.wasm": wasm, "model.bin": blob,
            "index.html": index.encode("utf-8")}


def check_folder(out_dir, what="--format web"):
    """The output folder of --format web (what: the export, for the message): made if
    missing (its parent must exist)."""
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ExportError(f"cannot write {out_dir}: it is a file; {what} writes a folder")
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise ExportError(f"cannot write {out_dir}: {parent} is not a directory")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot write {out_dir}: {e.strerror}") from None


def run_info(path, best=True):
    """What the page's note says of training, read from the headers only (no weights):
    the checkpoint's info (step, validation loss) and the corpus of its run. {} if
    `path` is not a run or a checkpoint file (the model loads or fails elsewhere)."""
    import json
    import struct
    from charrnn.io.rundir import STATE_FILE, find_checkpoint

    def meta(file):
        with open(file, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 1 << 24:
                return {}
            return json.loads(f.read(n)).get("__metadata__", {})
    try:
        ck = Path(find_checkpoint(path, best=best))
        info = json.loads(meta(ck).get("info", "{}")) or {}
        state = ck.parent / STATE_FILE
        if state.exists():
            corpus = json.loads(meta(state).get("meta", "{}")).get("corpus")
            if corpus:
                info["corpus"] = os.path.basename(str(corpus))
        return {k: info[k] for k in ("step", "val_loss", "best_val_loss", "corpus") if k in info}
    except Exception:   # the note is optional: never fail an export over it
        return {}
