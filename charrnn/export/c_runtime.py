"""The C text that charrnn/c_export.py puts around a model's weights.

Every piece is C99 with no dependency beyond the C library (libm only for --eval in the
optional main program). The math and the sampler repeat, operation for operation, what
charrnn's own sampler does (kernels/cellmath.h: the fast exp behind sigmoid and tanh;
kernels/sampling.h: xoshiro256** seeded through splitmix64, temperature, top-k, top-p,
one uniform per draw), so that an exported model draws the same text for the same seed.
Identifiers of the public API start with `charrnn_` / `CHARRNN_`; export_c renames them
when another prefix is asked for. Internal helpers are static and start with `cr_`.
"""

# ---- element-wise math (kernels/cellmath.h, float32 path) ------------------------------
MATH = r"""
/* exp(x) = 2^n exp(r), n = round(x / ln2), r in [-ln2/2, ln2/2], exp(r) by its degree-7
 * Taylor polynomial: charrnn's own float32 exp (kernels/cellmath.h), so that sigmoid,
 * tanh and the sampler's weights are the ones charrnn computes. The clamps keep 2^n a
 * normal float. */
static float cr_expf(float x)
{
    float n, r, p, scale;
    int32_t bits;
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* rounds x / ln2 */
    r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    bits = ((int32_t)n + 127) << 23;                               /* 2^n as float bits */
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

@SIGMOID@
static float cr_tanh(float x)
{
    float ax = x < 0.0f ? -x : x, e = cr_expf(-2.0f * ax), x2 = x * x, t, s;
    t = (1.0f - e) / (1.0f + e);
    t = x < 0.0f ? -t : t;
    /* near 0, 1 - e cancels: the odd Taylor series instead */
    s = x * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f))));
    return ax < 0.15625f ? s : t;
}
"""

SIGMOID = "static float cr_sigmoid(float x) { return 1.0f / (1.0f + cr_expf(-x)); }\n"
MATH = MATH.replace("@SIGMOID@", SIGMOID)

# ---- matrix-vector products: float32 or per-row int8 ------------------------------------
MATVEC_F32 = r"""
typedef const float *cr_mat;   /* (rows, cols) row-major float32 */

/* y[r] += M[r, :] . x for r < rows. Four partial sums: independent chains the CPU can
 * overlap (a compiler may not reorder a float sum by itself). */
static void cr_mv(float *y, cr_mat M, const float *x, int rows, int cols)
{
    int r, j;
    for (r = 0; r < rows; r++) {
        const float *w = M + (long)r * cols;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (j = 0; j + 4 <= cols; j += 4) {
            s0 += w[j] * x[j];
            s1 += w[j + 1] * x[j + 1];
            s2 += w[j + 2] * x[j + 2];
            s3 += w[j + 3] * x[j + 3];
        }
        for (; j < cols; j++) s0 += w[j] * x[j];
        y[r] += (s0 + s1) + (s2 + s3);
    }
}

/* dst = M[row, :] */
static void cr_row(float *dst, cr_mat M, int row, int cols)
{
    memcpy(dst, M + (long)row * cols, (size_t)cols * sizeof(float));
}
"""

MATVEC_I8 = r"""
/* (rows, cols) row-major int8 q with one float scale per row: M[r, j] = s[r] * q[r, j]. */
typedef struct { const int8_t *q; const float *s; } cr_mat;

/* y[r] += M[r, :] . x for r < rows; the sum runs in float over q * x, scaled once. */
static void cr_mv(float *y, cr_mat M, const float *x, int rows, int cols)
{
    int r, j;
    for (r = 0; r < rows; r++) {
        const int8_t *w = M.q + (long)r * cols;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (j = 0; j + 4 <= cols; j += 4) {
            s0 += (float)w[j] * x[j];
            s1 += (float)w[j + 1] * x[j + 1];
            s2 += (float)w[j + 2] * x[j + 2];
            s3 += (float)w[j + 3] * x[j + 3];
        }
        for (; j < cols; j++) s0 += (float)w[j] * x[j];
        y[r] += M.s[r] * ((s0 + s1) + (s2 + s3));
    }
}

/* dst = M[row, :] */
static void cr_row(float *dst, cr_mat M, int row, int cols)
{
    const int8_t *w = M.q + (long)row * cols;
    float s = M.s[row];
    int j;
    for (j = 0; j < cols; j++) dst[j] = s * (float)w[j];
}
"""

# ---- the cells: PyTorch's math, in charrnn's order of operations -------------------------
CELLS = {
    "lstm": r"""
/* a (4H) pre-activations, blocks i f g o; c, h (H) updated in place. */
static void cr_cell(float *a, float *c, float *h)
{
    int j;
    for (j = 0; j < 2 * H_; j++) a[j] = cr_sigmoid(a[j]);
    for (j = 2 * H_; j < 3 * H_; j++) a[j] = cr_tanh(a[j]);
    for (j = 3 * H_; j < 4 * H_; j++) a[j] = cr_sigmoid(a[j]);
    for (j = 0; j < H_; j++) {
        float cv = a[H_ + j] * c[j] + a[j] * a[2 * H_ + j];
        c[j] = cv;
        h[j] = a[3 * H_ + j] * cr_tanh(cv);
    }
}
""",
    "gru": r"""
/* a (3H) input part x W_ih^T + b_ih (+ b_hr, b_hz), blocks r z n; g (3H) recurrent part
 * h W_hh^T (+ b_hn in the n block); h (H) updated in place. */
static void cr_cell(float *a, const float *g, float *h)
{
    int j;
    for (j = 0; j < 2 * H_; j++) a[j] = cr_sigmoid(a[j] + g[j]);
    for (j = 0; j < H_; j++) {
        float n = cr_tanh(a[2 * H_ + j] + a[j] * g[2 * H_ + j]), z = a[H_ + j];
        h[j] = (1 - z) * n + z * h[j];
    }
}
""",
    "rnn": r"""
/* h = tanh(a), a (H) the pre-activation. */
static void cr_cell(const float *a, float *h)
{
    int j;
    for (j = 0; j < H_; j++) h[j] = cr_tanh(a[j]);
}
""",
}

# ---- the sampler (kernels/sampling.h) ----------------------------------------------------
SAMPLER = r"""
static uint64_t cr_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* splitmix64: expands the seed into xoshiro's 4 state words, as charrnn does. */
static uint64_t cr_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* xoshiro256** */
static uint64_t cr_next(uint64_t *s)
{
    uint64_t out = cr_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = cr_rotl(s[3], 45);
    return out;
}

/* uniform in [0, 1): the top 53 bits of a draw times 2^-53 */
static double cr_uniform(uint64_t *s) { return (double)(cr_next(s) >> 11) * (1.0 / 9007199254740992.0); }

/* Is id a ahead of id b in decreasing-logit order (ties: the smaller id first)? */
static int cr_ahead(const float *z, int32_t a, int32_t b)
{
    return z[a] > z[b] || (z[a] == z[b] && a < b);
}

/* restore the heap property below position i of heap[0..n) */
static void cr_sift(int32_t *heap, int n, int i, const float *z)
{
    int32_t x = heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cr_ahead(z, heap[c + 1], heap[c])) c++;
        if (!cr_ahead(z, heap[c], x)) break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = x;
}

/* pop the root: the j-th popped id lands in order[V - 1 - j] */
static int32_t cr_pop(int32_t *order, int *n, const float *z)
{
    int32_t top = order[0];
    *n -= 1;
    order[0] = order[*n];
    order[*n] = top;
    if (*n > 1) cr_sift(order, *n, 0, z);
    return top;
}

void charrnn_sampler_init(charrnn_sampler *sp, uint64_t seed, double temperature, int top_k,
                          double top_p)
{
    uint64_t x = seed;
    double inv;
    int w;
    for (w = 0; w < 4; w++) sp->s[w] = cr_splitmix64(&x);
    sp->greedy = !(temperature > 0);
    /* 1/T capped so that (z - max z) / T stays finite, as in charrnn */
    inv = sp->greedy ? 0 : 1.0 / temperature;
    sp->inv_temp = (float)(inv < 1e30 ? inv : 1e30);
    sp->top_k = top_k >= 1 && top_k < V_ ? top_k : V_;
    sp->top_p = top_p > 0 && top_p < 1 ? top_p : 1.0;
}

int charrnn_sample(charrnn_sampler *sp, const float *z)
{
    float m = z[0], *w = sp->w;
    int32_t *order = sp->order;
    int i, j, heap = V_, kept = 0, k = sp->top_k;
    double u, mass = 0, total = 0, acc = 0, target;
    if (sp->greedy) {   /* the first id with the largest logit; no draw */
        int best = 0;
        for (i = 1; i < V_; i++)
            if (z[i] > z[best]) best = i;
        return best;
    }
    u = cr_uniform(sp->s);
    for (i = 1; i < V_; i++) m = z[i] > m ? z[i] : m;
    for (i = 0; i < V_; i++) w[i] = cr_expf((z[i] - m) * sp->inv_temp);
    if (k >= V_ && !(sp->top_p < 1.0)) {   /* no filter: the inverse CDF in id order */
        for (i = 0; i < V_; i++) total += w[i];
        target = u * total;
        for (i = 0; i < V_; i++) {
            acc += w[i];
            if (acc > target) return i;
        }
        return V_ - 1;
    }
    /* top-k / top-p: candidates in decreasing-logit order from a heap, popped lazily */
    for (i = 0; i < V_; i++) order[i] = (int32_t)i;
    for (i = V_ / 2 - 1; i >= 0; i--) cr_sift(order, V_, i, z);
    if (sp->top_p < 1.0) {
        if (k < V_) {
            for (j = 0; j < k; j++) total += w[cr_pop(order, &heap, z)];
            while (kept < k) {
                mass += w[order[V_ - 1 - kept]];
                kept++;
                if (mass >= sp->top_p * total) break;
            }
        } else {
            for (i = 0; i < V_; i++) total += w[i];
            while (kept < V_) {
                mass += w[cr_pop(order, &heap, z)];
                kept++;
                if (mass >= sp->top_p * total) break;
            }
        }
    } else {
        for (kept = 0; kept < k; kept++) mass += w[cr_pop(order, &heap, z)];
    }
    target = u * mass;
    for (j = 0; j < kept; j++) {
        int32_t id = order[V_ - 1 - j];
        acc += w[id];
        if (acc > target) return id;
    }
    return order[V_ - kept];
}
"""
