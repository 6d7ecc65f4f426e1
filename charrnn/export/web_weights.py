"""The weights of a web export: one binary file the WebAssembly runtime reads as data.

    bytes 0-7    b"CHRNNWEB"
    8-11         format version (uint32 LE, 1)
    12-15        n, the length of the JSON header (uint32 LE)
    16-16+n      JSON: vocabulary (code points, or bytes), sizes, the model note
    ...          zero padding to a multiple of 16
    then         the weights, read by webrt/core.c's cr_load: an int32 descriptor (magic
                 "CHRW", version, cell, L, H, E, V, int8, table, its own length, then the
                 byte offset of every array from the descriptor's start, -1 for none),
                 then the arrays, each 16-aligned, little-endian.

The arrays are the C export's (charrnn.export.c_source.prepared): the layer-0 table
emb W_ih0^T + bias where it pays, fused [W_ih | W_hh] for LSTM/RNN layers k >= 1, folded
biases, GRU's b_hn with the recurrent part; with int8, each matrix row as int8 and a
float scale (c_source.quantize_rows), biases float.
"""
import json
import struct

import numpy as np

from charrnn.export.c_source import prepared, quantize_rows

MAGIC = b"CHRNNWEB"
VERSION = 1
CELLS = {"lstm": 0, "gru": 1, "rnn": 2}
_FIXED = 10   # descriptor fields before the offsets (webrt/core.c, D_FIXED)


def _pad(n, to=16):
    return -n % to


class _Arrays:
    def __init__(self, start, int8):
        self.start, self.int8, self.parts, self.size = start, int8, [], start

    def _put(self, a):
        self.size += _pad(self.size)
        self.parts.append((self.size, a.tobytes()))
        off = self.size
        self.size += a.nbytes
        return off

    def vector(self, a):
        return [self._put(np.ascontiguousarray(a, "<f4"))]

    def matrix(self, W):
        if not self.int8:
            return [self._put(np.ascontiguousarray(W, "<f4")), -1]
        q, s = quantize_rows(W)
        return [self._put(q), self._put(s.astype("<f4"))]

    def blob(self, head):
        out = bytearray(self.size)
        out[:len(head)] = head
        for off, data in self.parts:
            out[off:off + len(data)] = data
        return bytes(out)


def weights_blob(model, int8=False):
    """The descriptor and the arrays (what cr_load reads), as bytes."""
    c = model.cfg
    table, emb, layers, Wd, bd = prepared(model)
    L = c.layers
    n_desc = _FIXED + 5 + 6 * L
    ar = _Arrays(4 * n_desc, int8)
    desc = ar.matrix(table if table is not None else emb)
    desc += ar.matrix(Wd) + ar.vector(bd)
    none2 = [-1, -1]
    for k, (Wi, Wr, b_i, b_r) in enumerate(layers):
        tab = k == 0 and table is not None
        desc += none2 if tab else ar.matrix(Wi)
        desc += none2 if Wr is None else ar.matrix(Wr)
        desc += [-1] if tab else ar.vector(b_i)
        desc += [-1] if b_r is None else ar.vector(b_r)
    head = [0x57524843, 1, CELLS[c.cell], L, c.hidden, c.embed, c.vocab_size, int(int8),
            int(table is not None), ar.size + _pad(ar.size)]
    ar.size += _pad(ar.size)
    return ar.blob(struct.pack(f"<{n_desc}i", *head, *desc))


def header(model, int8=False, note=None):
    """The JSON header: what the JavaScript side needs besides the weights."""
    from charrnn.data.text import BYTES, normalize_encoding
    from charrnn.version import __version__
    c = model.cfg
    vocab = list(model.vocab)
    return {"format": "charrnn-web", "version": VERSION, "charrnn_version": __version__,
            "cell": c.cell, "layers": c.layers, "hidden": c.hidden, "embed": c.embed,
            "vocab_size": c.vocab_size, "int8": bool(int8),
            "bytes": normalize_encoding(c.encoding) == BYTES,
            "vocab": [ord(ch) for ch in vocab],
            "start": vocab.index("\n") if "\n" in vocab else 0,
            "params": int(sum(p.size for p in model.params.values())),
            "note": note or {}}


def web_model(model, int8=False, note=None):
    """The whole weights file (bytes): magic, version, JSON header, weights."""
    js = json.dumps(header(model, int8, note), ensure_ascii=True,
                    separators=(",", ":")).encode("ascii")
    head = MAGIC + struct.pack("<II", VERSION, len(js)) + js
    return head + b"\0" * _pad(len(head)) + weights_blob(model, int8)
