"""Python-callable twins of the C-level helpers, so tests can reach them directly."""
from cython cimport floating

from _blas cimport gemm as _gemm
from _cellmath cimport cr_expf, cr_sigmoidf, cr_tanhf


def gemm(bint trans_a, bint trans_b, double alpha, const floating[:, ::1] A,
         const floating[:, ::1] B, double beta, floating[:, ::1] C):
    """C := alpha * op(A) @ op(B) + beta * C (row-major, through scipy's BLAS)."""
    cdef int M = C.shape[0], N = C.shape[1]
    cdef int K = A.shape[0] if trans_a else A.shape[1]
    if (A.shape[1] if trans_a else A.shape[0]) != M:
        raise ValueError("gemm: op(A) rows != C rows")
    if (B.shape[1] if trans_b else B.shape[0]) != K or (B.shape[0] if trans_b else B.shape[1]) != N:
        raise ValueError("gemm: op(B) shape does not match")
    if M == 0 or N == 0:
        return
    with nogil:
        _gemm(trans_a, trans_b, M, N, K, <floating>alpha, &A[0, 0], <int>A.shape[1],
              &B[0, 0], <int>B.shape[1], <floating>beta, &C[0, 0], N)


def fast_math_f32(const float[::1] x, float[::1] exp_out, float[::1] sig_out, float[::1] tanh_out):
    """The float32 approximations used by the kernels, element-wise (for accuracy tests)."""
    cdef Py_ssize_t i, n = x.shape[0]
    if exp_out.shape[0] != n or sig_out.shape[0] != n or tanh_out.shape[0] != n:
        raise ValueError("fast_math_f32: length mismatch")
    with nogil:
        for i in range(n):
            exp_out[i] = cr_expf(x[i])
            sig_out[i] = cr_sigmoidf(x[i])
            tanh_out[i] = cr_tanhf(x[i])
