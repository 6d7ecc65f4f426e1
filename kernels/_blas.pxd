# Row-major BLAS over scipy.linalg.cython_blas (the scikit-learn approach): SciPy exports
# its BLAS as C function pointers, so we link nothing and work wherever SciPy has wheels.
#
# BLAS is column-major. A row-major (M, N) matrix is the column-major (N, M) matrix of its
# transpose, so the row-major C = op(A) @ op(B) is computed as the column-major
# C^T = op(B)^T @ op(A)^T: swap the operands and the sizes, keep the leading dimensions.
# `floating` picks sgemm for float32 and dgemm for float64.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void gemm(bint trans_a, bint trans_b, int M, int N, int K,
                      floating alpha, const floating *A, int lda,
                      const floating *B, int ldb,
                      floating beta, floating *C, int ldc) noexcept nogil:
    """C (M, N) := alpha * op(A) @ op(B) + beta * C, all row-major.

    op(A) is (M, K): A is stored (M, K) with row stride lda, or (K, M) if trans_a.
    op(B) is (K, N): B is stored (K, N) with row stride ldb, or (N, K) if trans_b.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if M <= 0 or N <= 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &N, &M, &K, &alpha, <float *> B, &ldb, <float *> A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &N, &M, &K, &alpha, <double *> B, &ldb, <double *> A, &lda,
              &beta, C, &ldc)


cdef inline void gemv(bint trans_a, int M, int N, floating alpha, const floating *A, int lda,
                      const floating *x, floating beta, floating *y) noexcept nogil:
    """y := alpha * op(A) @ x + beta * y, A row-major (M, N) with row stride lda.

    y has M entries (N if trans_a); x has N entries (M if trans_a).
    """
    # Row-major A is column-major A^T (N, M): flip the transpose flag.
    cdef char t = b'N' if trans_a else b'T'
    cdef int one = 1
    if M <= 0 or N <= 0:
        return
    if floating is float:
        sgemv(&t, &N, &M, &alpha, <float *> A, &lda, <float *> x, &one, &beta, y, &one)
    else:
        dgemv(&t, &N, &M, &alpha, <double *> A, &lda, <double *> x, &one, &beta, y, &one)


# charrnn's own sgemm (sgemm.h) on the current ISA tier's micro-kernel (dispatch.h):
# packed weights, tuned for the cells' shapes.
cdef extern from "cellmath.h" nogil:
    size_t cr_sgemm_packed_size(Py_ssize_t K, Py_ssize_t N)
    void cr_sgemm_pack(int trans_b, Py_ssize_t K, Py_ssize_t N, const float *B, Py_ssize_t ldb,
                       float *Bp)
    int cr_sgemm_packed_ok(const float *Bp, size_t n, Py_ssize_t K, Py_ssize_t N)
    void cr_sgemm(int trans_a, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                  const float *A, Py_ssize_t lda, const float *B, Py_ssize_t ldb,
                  float *C, Py_ssize_t ldc, int accumulate,
                  const float *b1, const float *b2)
    # bf16 products (sgemm_bf16.h): B rounded and packed for kind 0 (the portable
    # kernel) or 1 (the tier's native one); cr_sgemm runs a bf16 pack's product in bf16.
    size_t cr_sgemm_bf16_packed_size(Py_ssize_t K, Py_ssize_t N, int kind)
    int cr_sgemm_pack_bf16(int trans_b, Py_ssize_t K, Py_ssize_t N, const float *B,
                           Py_ssize_t ldb, float *Bp, int kind)
    void cr_sgemm_tn(Py_ssize_t M, Py_ssize_t K, const float *A, Py_ssize_t lda,
                     Py_ssize_t N1, const float *B1, Py_ssize_t ldb1, float *C1, Py_ssize_t ldc1,
                     Py_ssize_t N2, const float *B2, Py_ssize_t ldb2, float *C2, Py_ssize_t ldc2,
                     float *asum, float *asum2)
    # the same for a cell whose W_ih pack is Wp: in bf16 where its network is bf16 and
    # AMX runs (kernels/gemm_amx_bf16.h), else float32
    void cr_sgemm_tn_for(const float *Wp, Py_ssize_t M, Py_ssize_t K, const float *A,
                         Py_ssize_t lda, Py_ssize_t N1, const float *B1, Py_ssize_t ldb1,
                         float *C1, Py_ssize_t ldc1, Py_ssize_t N2, const float *B2,
                         Py_ssize_t ldb2, float *C2, Py_ssize_t ldc2, float *asum, float *asum2)


cdef inline void mm(bint own, bint trans_a, bint trans_b, int M, int N, int K,
                    const floating *A, int lda, const floating *B, int ldb,
                    const floating *Bp, bint accumulate, floating *C, int ldc) noexcept nogil:
    """C (M, N) := op(A) @ op(B), + C if accumulate; arguments as for gemm.

    own (float32 only): charrnn's sgemm on the current tier, on Bp (op(B) packed by
    cr_sgemm_pack) if not NULL, else on B in place (then not trans_b). Otherwise BLAS.
    """
    if floating is float:
        if own:
            if M > 0 and N > 0:
                if Bp != NULL:
                    cr_sgemm(trans_a, M, N, K, A, lda, Bp, -1, C, ldc, accumulate, NULL, NULL)
                else:
                    cr_sgemm(trans_a, M, N, K, A, lda, B, ldb, C, ldc, accumulate, NULL, NULL)
            return
    gemm(trans_a, trans_b, M, N, K, 1, A, lda, B, ldb, 1 if accumulate else 0, C, ldc)
