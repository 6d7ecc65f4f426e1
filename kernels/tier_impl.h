/* Every float32 element-wise kernel, compiled once per ISA tier: dispatch.h includes this
 * file inside each tier's target region with TIER(name) appending the tier's suffix
 * (lstm_fwd_step_f32_avx2, ...). The loops are plain C written to vectorise; the region
 * decides how wide. No include guard: it is a template.
 *
 * float32 uses a fast exp (tier_math.h: range reduction + degree-7 polynomial, max abs error of
 * sigmoid/tanh ~2e-7); the float64 kernels (cellmath.h) use libm so gradient checks stay
 * exact. No -ffast-math anywhere: NaN must propagate (the trainer's divergence check
 * relies on it).
 */

#include "tier_math.h"

#define REAL float
#define SFX(name) TIER(name##_f32)
#define SIGM TIER(cr_sigmoidf)
#define TANH TIER(cr_tanhf)
#include "cellmath_impl.h"
#undef REAL
#undef SFX
#undef SIGM
#undef TANH

/* Softmax cross-entropy of one row of float32 logits: returns -log softmax(row)[target]
 * (float64). If scale != 0, row := (softmax(row) - onehot(target)) * scale, its gradient.
 * Each pass is a simple loop that vectorises; the sum runs in 16 float lanes, then
 * double: V is a vocabulary (tens to thousands), so float partial sums are exact enough. */
CR_UNUSED static double TIER(softmax_xent_row_f32)(float *__restrict row, idx_t V,
                                                   idx_t target, float scale)
{
    float m = row[0];
    for (idx_t j = 1; j < V; j++) m = row[j] > m ? row[j] : m;
    float lane[16] = {0};
    double s = 0;
    float zt = row[target] - m;
    if (scale != 0) {
        for (idx_t j = 0; j < V; j++) row[j] = TIER(cr_expf)(row[j] - m);
        idx_t j = 0;
        for (; j + 16 <= V; j += 16)
            for (int k = 0; k < 16; k++) lane[k] += row[j + k];
        for (; j < V; j++) s += row[j];
        for (int k = 0; k < 16; k++) s += lane[k];
        float f = (float)((double)scale / s);
        for (idx_t j2 = 0; j2 < V; j2++) row[j2] *= f;
        row[target] -= scale;
    } else {
        idx_t j = 0;
        for (; j + 16 <= V; j += 16)
            for (int k = 0; k < 16; k++) lane[k] += TIER(cr_expf)(row[j + k] - m);
        for (; j < V; j++) s += TIER(cr_expf)(row[j] - m);
        for (int k = 0; k < 16; k++) s += lane[k];
    }
    return log(s) - (double)zt;
}

/* The sampler's weights w = exp((z - m) * inv_temp) (sampling.h, cr_pick). */
CR_UNUSED static void TIER(cr_weights)(float *__restrict w, const float *__restrict z, float m,
                                       float inv_temp, idx_t V)
{
    for (idx_t i = 0; i < V; i++) w[i] = TIER(cr_expf)((z[i] - m) * inv_temp);
}

/* exp, sigmoid and tanh of x element-wise, as the tier's kernels compute them (tests). */
CR_UNUSED static void TIER(fast_math_f32)(const float *__restrict x, float *__restrict e,
                                          float *__restrict s, float *__restrict t, idx_t n)
{
    for (idx_t i = 0; i < n; i++) e[i] = TIER(cr_expf)(x[i]);
    for (idx_t i = 0; i < n; i++) s[i] = TIER(cr_sigmoidf)(x[i]);
    for (idx_t i = 0; i < n; i++) t[i] = TIER(cr_tanhf)(x[i]);
}
