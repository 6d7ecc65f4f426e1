# The sampler's C functions (kernels/sampling.h), for the modules that draw characters:
# _sample (charrnn sample) and _batch (charrnn serve). Needs int32_t and uint64_t cimported.
cdef extern from "sampling.h" nogil:
    void cr_rng_seed(uint64_t *states, Py_ssize_t K, uint64_t seed)
    double cr_rng_uniform(uint64_t *s)
    Py_ssize_t cr_argmax(const float *z, Py_ssize_t V)
    Py_ssize_t cr_pick(const float *z, Py_ssize_t V, float inv_temp, Py_ssize_t top_k,
                       double top_p, double u, float *w, int32_t *order)
