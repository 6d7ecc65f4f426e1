"""Python-callable twins of C routines that only tests (and bench/) call: each runs the
C code as the kernels do, so tests can compare it with a NumPy reference.
"""
from cython cimport floating

from _blas cimport gemm as _gemm, mm, cr_sgemm_packed_ok
from _cellmath cimport cr_expf, cr_sigmoidf, cr_tanhf, fast_math_f32_tier

include "_dispatch.pxi"


def sgemm(bint trans_a, const float[:, ::1] A, const float[:, ::1] B, const float[::1] Bp,
          bint accumulate, float[:, ::1] C):
    """C := op(A) @ B (+ C if accumulate) on charrnn's own sgemm (current tier): B (K, N)
    in place, or its packed form Bp if Bp is not empty."""
    cdef Py_ssize_t M = C.shape[0], N = C.shape[1]
    cdef Py_ssize_t K = A.shape[0] if trans_a else A.shape[1]
    if (A.shape[1] if trans_a else A.shape[0]) != M or B.shape[0] != K or B.shape[1] != N:
        raise ValueError("sgemm: shapes do not match")
    if Bp.shape[0] != 0 and not cr_sgemm_packed_ok(&Bp[0], Bp.shape[0], K, N):
        raise ValueError("sgemm: Bp is not B packed for this ISA tier")
    if M == 0 or N == 0:
        return
    cdef const float *pA = &A[0, 0] if A.shape[0] * A.shape[1] > 0 else NULL
    cdef const float *pB = &B[0, 0] if K > 0 else NULL
    cdef const float *pBp = &Bp[0] if Bp.shape[0] != 0 else NULL
    with nogil:   # the kernels' own entry point, as they call it
        mm(True, trans_a, False, <int>M, <int>N, <int>K, pA, <int>A.shape[1], pB, <int>N, pBp,
           accumulate, &C[0, 0], <int>N)


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


def fast_math_f32(const float[::1] x, float[::1] exp_out, float[::1] sig_out, float[::1] tanh_out,
                  bint tier=False):
    """The float32 approximations used by the kernels, element-wise (for accuracy tests):
    the scalar definitions, or with tier=True as the current tier's vector loops run them."""
    cdef Py_ssize_t i, n = x.shape[0]
    if exp_out.shape[0] != n or sig_out.shape[0] != n or tanh_out.shape[0] != n:
        raise ValueError("fast_math_f32: length mismatch")
    if n == 0:
        return
    with nogil:
        if tier:
            fast_math_f32_tier(&x[0], &exp_out[0], &sig_out[0], &tanh_out[0], n)
        else:
            for i in range(n):
                exp_out[i] = cr_expf(x[i])
                sig_out[i] = cr_sigmoidf(x[i])
                tanh_out[i] = cr_tanhf(x[i])
