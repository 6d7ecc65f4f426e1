"""Taking a trained model out of Python: ONNX for ONNX runtimes, bare C99 for anything
with a C compiler (microcontrollers included).

    charrnn.export_onnx(model, "model.onnx")        # charrnn/onnx_export.py
    charrnn.export_c(model, "model.c", int8=False)  # charrnn/c_export.py

`model` is a CharRNN or whatever `charrnn sample` accepts: a run directory or a
.safetensors checkpoint. Files are written atomically (temp file, fsync, rename), so a
failed export never leaves half a file behind.
"""
import os

from charrnn.errors import ExportError


def as_model(model, best=False):
    """A CharRNN: `model` itself, or loaded from a run directory / .safetensors path."""
    from charrnn.model import CharRNN, load
    if isinstance(model, CharRNN):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load(model, best=best)
    raise ExportError(f"expected a CharRNN, a run directory or a .safetensors path, not "
                      f"{type(model).__name__}")


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
    """
    from charrnn.export.onnx_graph import build_onnx
    m = build_onnx(as_model(model))
    write_output(path, m.SerializeToString())
    return path


def export_c(model, path, int8=False, prefix="charrnn"):
    """Write `model` to `path` as one self-contained C99 file; returns path.

    int8: per-row int8 weights with a float scale per row (about 4x smaller), state and
    accumulation in float. prefix: the prefix of every public symbol (`charrnn_step`...).
    """
    from charrnn.export.c_source import c_source
    write_output(path, c_source(as_model(model), int8=int8, prefix=prefix).encode("utf-8"))
    return path
