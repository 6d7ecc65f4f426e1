"""Taking a trained model out of Python: ONNX for ONNX runtimes, bare C99 for anything
with a C compiler (microcontrollers included), a web page or a folder for the browser.

    charrnn.export_onnx(model, "model.onnx")        # onnx_graph.py
    charrnn.export_c(model, "model.c", int8=False)  # c_source.py; c_seq2seq.py, c_classifier.py
    export_html(model, "model.html", int8=False)    # web_page.py (WebAssembly, webrt/)
    export_web(model, "site/model/", int8=False)    # the same runtime as files

`model` is a CharRNN or whatever `charrnn sample` accepts: a run directory or a
.safetensors checkpoint. Files are written atomically (temp file, fsync, rename), so a
failed export never leaves half a file behind.
"""
import os

from charrnn.errors import CheckpointError, ExportError


def as_model(model, best=False, classifiers=False):
    """A CharRNN: `model` itself, or loaded from a run directory / .safetensors path;
    with classifiers, a classifier's path gives its TextClassifier (export_c)."""
    from charrnn.model import CharRNN, load
    if isinstance(model, CharRNN):
        return model
    if isinstance(model, (str, os.PathLike)):
        kind = _kind(model, best)
        if kind == "classifier" and classifiers:
            from charrnn.classifier import load_classifier
            return load_classifier(model)   # best.safetensors, as charrnn classify reads
        if kind == "classifier":
            raise ExportError(f"{model} is a classifier: it exports to C or ONNX only "
                              "(export_c, export_onnx)")
        if kind == "seq2seq":
            raise ExportError(f"{model} is a transducer: pass charrnn.load_transducer"
                              f"({str(model)!r}) (charrnn export RUN --format c or onnx "
                              "loads it)")
        return load(model, best=best)
    raise ExportError(f"expected a CharRNN, a run directory or a .safetensors path, not "
                      f"{type(model).__name__}")


def _what(model):
    """"seq2seq" for a Transducer, "classifier" for a TextClassifier, else "lm"."""
    if hasattr(model, "tgt_vocab") and hasattr(model, "transduce"):
        return "seq2seq"
    return "classifier" if hasattr(model, "labels") and hasattr(model, "predict_proba") \
        else "lm"


def _kind(path, best=True):
    """"lm", "classifier", "seq2seq", or None when path holds no model (load() says why)."""
    from charrnn.classifier import run_kind
    try:
        return run_kind(path, best=best)
    except CheckpointError:
        return None


def write_output(path, data):
    """Write bytes to path atomically; RunDirError (one line) if it cannot be written."""
    from charrnn.io.files import atomic_write_bytes
    if os.path.isdir(path):
        raise ExportError(f"cannot write {path}: it is a directory; give a file name")
    atomic_write_bytes(path, data)


def export_onnx(model, path):
    """Write `model` to `path` as an ONNX model (opset 17, IR 8); returns path.

    Inputs tokens (T, B) int64, h0 (L, B, H) and for the LSTM c0; outputs logits
    (T, B, V), hn and cn. The vocabulary, config and charrnn version are in the
    model's metadata_props. Needs the optional dependency onnx (`charrnn-fast[onnx]`).
    A classifier (charrnn.load_classifier's, or its run): inputs ids (T, B) int64 and
    lengths (B,) int32, outputs probabilities and logits (B, C) (onnx_classifier.py).
    A transducer (charrnn.load_transducer's): `path` is a folder (made if missing) that
    gets encode.onnx and step.onnx, the encoder and one decoder step (onnx_seq2seq.py).
    """
    if isinstance(model, (str, os.PathLike)):
        model = as_model(model, classifiers=True)
    if _what(model) == "classifier":
        from charrnn.export.onnx_classifier import build_classifier_onnx
        write_output(path, build_classifier_onnx(model).SerializeToString())
        return path
    if _what(model) == "seq2seq":
        from charrnn.export.onnx_seq2seq import build_seq2seq_onnx
        from charrnn.export.web_page import check_folder
        encode, step = build_seq2seq_onnx(model)
        check_folder(path, "a transducer's ONNX export")
        write_output(os.path.join(path, "encode.onnx"), encode.SerializeToString())
        write_output(os.path.join(path, "step.onnx"), step.SerializeToString())
        return path
    from charrnn.export.onnx_graph import build_onnx
    m = build_onnx(as_model(model))
    write_output(path, m.SerializeToString())
    return path


def export_c(model, path, int8=False, prefix="charrnn"):
    """Write `model` to `path` as one self-contained C99 file; returns path.

    `model` may also be a transducer (charrnn.load_transducer's): its file decodes
    greedily (c_seq2seq.py); or a classifier (charrnn.load_classifier's, or its run):
    its file gives the label probabilities (c_classifier.py).
    int8: per-row int8 weights with a float scale per row (about 4x smaller), state and
    accumulation in float. prefix: the prefix of every public symbol (`charrnn_step`...).
    """
    if isinstance(model, (str, os.PathLike)):
        model = as_model(model, classifiers=True)
    if _what(model) == "seq2seq":
        from charrnn.export.c_seq2seq import c_seq2seq_source
        src = c_seq2seq_source(model, int8=int8, prefix=prefix)
    elif _what(model) == "classifier":
        from charrnn.export.c_classifier import c_classifier_source
        src = c_classifier_source(model, int8=int8, prefix=prefix)
    else:
        from charrnn.export.c_source import c_source
        src = c_source(as_model(model), int8=int8, prefix=prefix)   # or says what it is not
    write_output(path, src.encode("utf-8"))
    return path


def _model_and_info(model, best):
    from charrnn.export.web_page import run_info
    info = run_info(model, best=best) if isinstance(model, (str, os.PathLike)) else {}
    return as_model(model, best=best), info


def export_html(model, path, int8=False, best=True, info=None):
    """Write `model` as one self-contained HTML page (WebAssembly runtime and weights
    inside, no request: opens from file://); returns path. info: the page's note of
    training (step, val_loss, corpus); read from the run when `model` is a path."""
    from charrnn.export.web_page import page_html
    model, found = _model_and_info(model, best)
    write_output(path, page_html(model, int8=int8, info=info or found).encode("utf-8"))
    return path


def export_web(model, out_dir, int8=False, best=True, info=None):
    """Write `model` into the folder out_dir (made if missing) as charrnn.js (an ES
    module, ml5.js CharRNN's API), charrnn.wasm, model.bin and index.html; returns
    out_dir."""
    from charrnn.export.web_page import check_folder, web_folder
    model, found = _model_and_info(model, best)
    check_folder(out_dir)
    for name, data in web_folder(model, out_dir, int8=int8, info=info or found).items():
        write_output(os.path.join(out_dir, name), data)
    return out_dir
