/* The float32 fast exp, sigmoid and tanh of one tier, one value at a time: the building
 * blocks of every float32 kernel (tier_impl.h includes this inside each tier's region).
 * Separate so that a module importing its kernels from charrnn._isa (dispatch.h) can
 * still have the scalar tier's single-value versions (cr_expf, ...) without compiling
 * any tier's loops. No include guard: it is a template over TIER(name).
 */

/* exp(x), float32, branch-free so it vectorises. exp(x) = 2^n * exp(r) with
 * n = round(x / ln2), r = x - n ln2 in [-ln2/2, ln2/2]; exp(r) by its Taylor polynomial
 * (degree 7: truncation error < 6e-9 relative). The clamp keeps 2^n a normal float;
 * comparisons are false for NaN, so NaN passes through. */
static inline float TIER(cr_expf)(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f;            /* 1.5 * 2^23: x + shifter rounds x */
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693359375f;               /* ln2 = hi + lo, hi exact in few bits */
    r = r - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;      /* 2^n as float bits */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float TIER(cr_sigmoidf)(float x) { return 1.0f / (1.0f + TIER(cr_expf)(-x)); }

static inline float TIER(cr_tanhf)(float x)
{
    float ax = x < 0.0f ? -x : x;
    float e = TIER(cr_expf)(-2.0f * ax);
    float t = (1.0f - e) / (1.0f + e);
    t = x < 0.0f ? -t : t;
    /* Near 0, 1 - e cancels: use the odd Taylor series there (error < 1e-9). */
    float x2 = x * x;
    float s = x * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f))));
    return ax < 0.15625f ? s : t;
}
