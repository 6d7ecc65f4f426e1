"""Which GEMM the float32 kernels use, and the weights packed for it (charrnn.nn.cells).

float32 products run on charrnn's own sgemm (kernels/sgemm.h) on the ISA tier in use, with
each weight packed once per pass into the panels its micro-kernel reads; float64, and
float32 on the BLAS backend, on SciPy's BLAS (an empty pack tells the kernels so). A
workspace of precision "bf16" packs in bfloat16 instead (kernels/sgemm_bf16.h: always the
own GEMM, a BLAS has no bf16; charrnn.nn.precision says where it may run).
"""
import contextlib
import os

import numpy as np

from charrnn import _isa, _ops
from charrnn.nn import precision
from charrnn.nn.parallel import empty as _empty, serial as _serial

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Which GEMM float32 uses: "own" (charrnn's sgemm on the current tier) or "blas";
# None: the tier's default (own everywhere but on the scalar tier).
_backend = ["blas" if os.environ.get("CHARRNN_SGEMM") == "blas" else None]
_NO_PACK = {dt: np.empty(0, dt) for dt in DTYPES}   # an empty pack: the kernels use BLAS


def current_gemm_backend():
    """"own" or "blas": what the float32 kernels use now (float64 always uses BLAS)."""
    if _backend[0] is None:
        return "own" if _isa.sgemm_default() else "blas"
    return _backend[0]


@contextlib.contextmanager
def gemm_backend(name):
    """Within the block, float32 kernels use `name`: "blas", or "own" (charrnn's sgemm on
    the current ISA tier, the scalar tier's included). Process-wide, like threadpoolctl."""
    if name not in ("own", "blas"):
        raise ValueError(f"gemm_backend: 'own' or 'blas', not {name!r}")
    old = _backend[0]
    _backend[0] = name
    try:
        yield
    finally:
        _backend[0] = old


def _packer(ws, dtype):
    """How a pass with workspace ws packs its weights: None (BLAS: float64, or float32 on
    the BLAS backend), or (size(K, N), pack(trans, W, out)): float32 for the own sgemm,
    or bf16 if ws's precision is (always the own GEMM: a BLAS has no bf16)."""
    if dtype != np.float32:
        return None
    if ws is not None and ws.precision == "bf16":
        native = precision.kernel_native()
        return (lambda K, N: _ops.sgemm_packed_size_bf16(K, N, native),
                lambda trans, W, out: _ops.sgemm_pack_bf16(trans, W, out, native))
    if current_gemm_backend() != "own":
        return None
    return _ops.sgemm_packed_size, _ops.sgemm_pack


def pack(ws, name, W, trans):
    """W (or W^T if trans) packed for the own GEMM (in bf16 if ws's precision is), in
    workspace buffer `name`; or an empty array (BLAS) for float64 or the BLAS backend."""
    p = _packer(ws, W.dtype)
    if p is None:
        return _NO_PACK[W.dtype]
    K, N = (W.shape[1], W.shape[0]) if trans else W.shape
    out = _empty(ws, name, (p[0](K, N),), W.dtype)
    p[1](trans, W, out)
    return out


def _pack_two(ws, names, Ws, trans, parallel):
    """pack() of two weights, on two threads when parallel has them."""
    p = _packer(ws, Ws[0].dtype)
    if _serial(parallel) or p is None:
        return tuple(pack(ws, n, W, trans) for n, W in zip(names, Ws))
    outs = []
    for n, W in zip(names, Ws):
        K, N = (W.shape[1], W.shape[0]) if trans else W.shape
        outs.append(_empty(ws, n, (p[0](K, N),), W.dtype))
    parallel.run(p[1], [(trans, W, o) for W, o in zip(Ws, outs)])
    return tuple(outs)
