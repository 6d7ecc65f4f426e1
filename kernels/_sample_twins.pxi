# Included by _sample.pyx (after Net and Run): Python-callable twins of its C pieces,
# so that tests can check each one against NumPy.

# ---- Python-callable twins of sampling.h and gemv_bf16.h, for tests --------------------

def gemv_bf16(const uint16_t[:, ::1] W, const float[::1] x, float[::1] y):
    """y += W @ x in place on the current tier: W (M, D) from pack_bf16_rows, x (D,),
    y (M,)."""
    _need(x.shape[0] == W.shape[1] and y.shape[0] == W.shape[0], "W (M, D), x (D,), y (M,)")
    if W.shape[0] and W.shape[1]:
        with nogil:
            cr_gemv_bf16(W.shape[0], W.shape[1], &W[0, 0], &x[0], &y[0])


def rng_seed(seed, Py_ssize_t K):
    """(K, 4) uint64: the xoshiro256** states of streams 0..K-1 for `seed`."""
    seed = int(seed)
    _need(K >= 1 and 0 <= seed < 2**64, "K >= 1 and seed in [0, 2**64)")
    states = np.zeros((K, 4), np.uint64)
    cdef uint64_t[:, ::1] s = states
    cr_rng_seed(&s[0, 0], K, <uint64_t> seed)
    return states


def rng_uniform(uint64_t[::1] state, Py_ssize_t n):
    """n uniforms in [0, 1) from one generator state (4,) uint64, advanced in place."""
    _need(state.shape[0] == 4 and n >= 0, "state (4,), n >= 0")
    out = np.empty(n, np.float64)
    cdef double[::1] o = out
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = cr_rng_uniform(&state[0])
    return out


def pick(const float[::1] logits, double temperature, top_k, top_p, double u):
    """The id the engine chooses from logits (V,) for a uniform u in [0, 1)."""
    cdef Py_ssize_t V = logits.shape[0]
    _need(V >= 1 and 0 <= u < 1 and temperature >= 0, "logits, u, temperature")
    if temperature == 0:
        return cr_argmax(&logits[0], V)
    w = np.empty(V, np.float32)
    order = np.empty(V, np.int32)
    cdef float[::1] wv = w
    cdef int32_t[::1] ov = order
    cdef Py_ssize_t k = V if top_k is None else min(<Py_ssize_t> top_k, V)
    _need(k >= 1, "top_k >= 1")
    cdef double p = 1.0 if top_p is None else top_p
    _need(0 < p <= 1, "0 < top_p <= 1")
    cdef float inv = min(1.0 / temperature, _MAX_INV_TEMP)
    return cr_pick(&logits[0], V, inv, k, p, u, &wv[0], &ov[0])
