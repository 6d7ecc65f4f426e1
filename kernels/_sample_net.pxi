# Included by _sample.pyx: the model the sampling loop runs, Net, which checks the shapes
# of the arrays charrnn.sample prepares (see _sample.pyx's docstring for what they are)
# and keeps pointers to them, and the constants and checks the loop shares with it.
from libc.stdint cimport uint16_t, uint32_t

cdef extern from "cellmath.h" nogil:
    uint32_t cr_bf16_bits(float f)      # float32 -> bf16 bits, nearest even (sgemm_bf16.h)
    void cr_bf16_rows_pack(Py_ssize_t M, Py_ssize_t D, const float *W, Py_ssize_t ldw,
                           uint16_t *P)  # bf16_rows.h

cdef enum:
    LSTM = 0
    GRU = 1
    RNN = 2
_KINDS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
_INT_MAX = 2**31 - 1  # BLAS takes 32-bit sizes

# 1/T is capped so that (z - max z) / T stays finite: the largest logit then gets weight
# exactly 1 and the others at most e^-87 (a temperature below 1e-30 is greedy anyway).
_MAX_INV_TEMP = 1e30


cdef struct Model:
    int kind
    Py_ssize_t L, H, E, V, G
    const float *table       # (V, GH), or NULL: layer 0's input part from emb and Wi[0]
    const float *emb         # (V, E)
    const float **Wi         # [L] input weights: (GH, E) layer 0; (GH, 2H) fused; (GH, H) gru
    const float **Wr         # [L] recurrent weights (GH, H); NULL for fused layers k >= 1
    const float **bi         # [L] (GH) bias of the input part
    const float **br         # [L] (GH) bias of the recurrent part (gru), else NULL
    const float *Wd          # (V, H)
    const float *bd          # (V)
    # precision bf16: the same matrices rounded to bf16 (uint16 bits), which the products
    # read instead; NULL (and entries NULL) in fp32. Biases, table and emb stay float32.
    const uint16_t **Wi16    # [L] as Wi (NULL for layer 0 when the table replaces it)
    const uint16_t **Wr16    # [L] as Wr
    const uint16_t *Wd16     # (V, H)


cdef int _need(bint ok, str what) except -1:
    if not ok:
        raise ValueError(f"sample kernel: inconsistent shapes ({what})")
    return 0


cdef const float *_ptr2(object a, Py_ssize_t rows, Py_ssize_t cols, str what) except? NULL:
    cdef const float[:, ::1] v = a
    _need(v.shape[0] == rows and v.shape[1] == cols, what)
    return &v[0, 0]


cdef const float *_ptr1(object a, Py_ssize_t n, str what) except? NULL:
    cdef const float[::1] v = a
    _need(v.shape[0] == n, what)
    return &v[0]


cdef float *_fptr(object a) except NULL:
    cdef float[::1] v = a.reshape(-1)
    return &v[0]


cdef dict step_buffers(Net net, Py_ssize_t R):
    """The scratch of R rows stepping `net` together, as _sample.Run and _batch.Batch
    both need it: state S (R, L*H) and cell C (L, R, H), gate buffers, the embedded
    input, logits (R, V), the sampler's weights and order (V,), rng (R, 4), cur (R,)."""
    cdef Py_ssize_t L = net.m.L, H = net.m.H, GH = net.m.G * net.m.H
    f32 = np.float32
    return dict(S=np.zeros((R, L * H), f32), C=np.zeros((L, R, H), f32),
                act=np.zeros((R, GH), f32), gh=np.zeros((R, GH), f32),
                xe=np.zeros((R, net.m.E), f32), tmp=np.zeros(2 * H, f32),
                logits=np.zeros((R, net.m.V), f32), w=np.zeros(net.m.V, f32),
                order=np.zeros(net.m.V, np.int32), rng=np.zeros((R, 4), np.uint64),
                cur=np.zeros(R, np.int32))


def round_bf16(a):
    """float32 array -> its bf16 bits (uint16, same shape), rounded to nearest even as
    the sampler rounds its weights (NaN stays NaN)."""
    f = np.ascontiguousarray(a, np.float32)
    out = np.empty(f.shape, np.uint16)
    cdef const float[::1] src = f.reshape(-1)
    cdef uint16_t[::1] dst = out.reshape(-1)
    cdef Py_ssize_t i
    for i in range(src.shape[0]):
        dst[i] = <uint16_t> cr_bf16_bits(src[i])
    return out


def pack_bf16_rows(W):
    """float32 matrix (M, D) -> uint16 (M, D): rounded to bf16 in the layout the bf16
    products read (kernels/bf16_rows.h)."""
    cdef const float[:, ::1] w = np.ascontiguousarray(W, np.float32)
    out = np.empty((w.shape[0], w.shape[1]), np.uint16)
    cdef uint16_t[:, ::1] p = out
    if w.shape[0] and w.shape[1]:
        cr_bf16_rows_pack(w.shape[0], w.shape[1], &w[0, 0], w.shape[1], &p[0, 0])
    return out


cdef const uint16_t *_bf16(object a, list keep) except? NULL:
    """A bf16 copy of float32 matrix a (bf16_rows.h's layout), kept alive in keep."""
    b = pack_bf16_rows(a)
    keep.append(b)
    cdef uint16_t[:, ::1] v = b
    return &v[0, 0]


PRECISIONS = ("fp32", "bf16")


cdef class Net:
    """A model's weights, prepared by charrnn.sample (see the module docstring).

    Net(cell, emb, table, layers, Wd, bd, precision="fp32"): emb (V, E); table (V, GH) or
    None; layers a list of L tuples (Wi, Wr, bi, br) with None where a layer has no such
    array; all float32 C-contiguous. The arrays are kept alive and never written to.
    precision "bf16": the Net also keeps every weight matrix rounded to bf16 (Wi, Wr, Wd;
    not emb, table or biases), and _sample.Run's products read those (gemv_bf16.h).
    """
    cdef Model m
    cdef readonly str cell
    cdef readonly str precision
    cdef object _keep

    def __cinit__(self):
        self.m.Wi = self.m.Wr = self.m.bi = self.m.br = NULL
        self.m.Wi16 = self.m.Wr16 = NULL
        self.m.Wd16 = NULL

    def __init__(self, str cell, emb, table, list layers, Wd, bd, str precision="fp32"):
        if self.m.Wi != NULL:
            raise RuntimeError("a Net is initialised once (Runs point into its arrays)")
        _need(cell in _KINDS, "cell")
        _need(precision in PRECISIONS, "precision")
        cdef Py_ssize_t L = len(layers), V = np.shape(emb)[0], E = np.shape(emb)[1]
        cdef Py_ssize_t H = np.shape(Wd)[1], G = _GATES[cell], GH, k
        GH = G * H
        _need(L >= 1 and V >= 1 and E >= 1 and H >= 1, "empty dimension")
        _need(GH * max(E, 2 * H, V) <= _INT_MAX and V * GH <= _INT_MAX, "too large for BLAS")
        self.cell = cell
        self._keep = (emb, table, layers, Wd, bd)
        self.m.kind = _KINDS[cell]
        self.m.L, self.m.H, self.m.E, self.m.V, self.m.G = L, H, E, V, G
        self.m.emb = _ptr2(emb, V, E, "emb")
        self.m.table = NULL if table is None else _ptr2(table, V, GH, "table")
        self.m.Wd = _ptr2(Wd, V, H, "Wd")
        self.m.bd = _ptr1(bd, V, "bd")
        self.m.Wi = <const float **> calloc(L, sizeof(float *))
        self.m.Wr = <const float **> calloc(L, sizeof(float *))
        self.m.bi = <const float **> calloc(L, sizeof(float *))
        self.m.br = <const float **> calloc(L, sizeof(float *))
        self.m.Wi16 = <const uint16_t **> calloc(L, sizeof(uint16_t *))
        self.m.Wr16 = <const uint16_t **> calloc(L, sizeof(uint16_t *))
        if not (self.m.Wi and self.m.Wr and self.m.bi and self.m.br and self.m.Wi16
                and self.m.Wr16):
            raise MemoryError()
        self.precision = precision
        bf16 = precision == "bf16"
        keep16 = []
        fused = cell != "gru"
        for k in range(L):
            Wi, Wr, bi, br = layers[k]
            D = E if k == 0 else (2 * H if fused else H)
            self.m.Wi[k] = _ptr2(Wi, GH, D, f"Wi[{k}]")
            self.m.bi[k] = _ptr1(bi, GH, f"bi[{k}]")
            if k == 0 or not fused:
                self.m.Wr[k] = _ptr2(Wr, GH, H, f"Wr[{k}]")
            else:
                _need(Wr is None, f"Wr[{k}] (fused into Wi)")
            if not fused:
                self.m.br[k] = _ptr1(br, GH, f"br[{k}]")
            else:
                _need(br is None, f"br[{k}] (folded into bi)")
            if bf16:
                if k > 0 or table is None:
                    self.m.Wi16[k] = _bf16(Wi, keep16)
                if self.m.Wr[k] != NULL:
                    self.m.Wr16[k] = _bf16(Wr, keep16)
        if bf16:
            self.m.Wd16 = _bf16(Wd, keep16)
        self._keep = (emb, table, layers, Wd, bd, keep16)

    def __dealloc__(self):
        free(self.m.Wi)
        free(self.m.Wr)
        free(self.m.bi)
        free(self.m.br)
        free(self.m.Wi16)
        free(self.m.Wr16)

    @property
    def sizes(self):
        """dict(L, H, E, V, G)"""
        return dict(L=self.m.L, H=self.m.H, E=self.m.E, V=self.m.V, G=self.m.G)

    @property
    def has_table(self):
        return self.m.table != NULL
