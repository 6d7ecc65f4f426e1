/* charrnn's WebAssembly runtime: one char-RNN step and charrnn's sampler, for any model
 * whose weights are handed over as data (charrnn/export/web_weights.py writes them).
 *
 * Sizes: V vocabulary, E embedding, H hidden, L layers, G gates (LSTM 4, GRU 3, RNN 1),
 * GH = G*H. The step is the C export's (charrnn/export/c_source.py, _step_code) with the
 * sizes read at run time instead of compiled in; the element-wise math, the cells and the
 * sampler are the C export's own text (charrnn/export/c_runtime.py), which
 * charrnn/export/web_build.py puts in front of this file as "shared.h". So a float model
 * draws, for the same seed, the text `charrnn sample` draws.
 *
 * The matrix-vector product uses SIMD128 with the C export's order of additions: lane i
 * of a row's accumulator is the C export's partial sum s_i (columns j = i mod 4), the
 * lanes are added as (s0 + s1) + (s2 + s3), a column tail goes to s0. Four rows run at
 * once so that four independent chains keep the CPU busy; each row's sum is unchanged.
 *
 * Memory: a bump allocator over the module's linear memory (cr_alloc); no libc malloc.
 * Exports (called by charrnn.js): cr_alloc, cr_load, cr_reset, cr_feed, cr_step,
 * cr_seed, cr_options, cr_sample, cr_generate, cr_probs, cr_logits, cr_ids.
 */
#include <stdint.h>
#include <string.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

/* ---- the model's sizes, read by cr_load ------------------------------------------------ */
static int cr_kind, cr_L, cr_H, cr_E, cr_V, cr_G, cr_int8, cr_table;
#define L_ cr_L
#define H_ cr_H
#define E_ cr_E
#define V_ cr_V
#define GH_ (cr_G * cr_H)

/* charrnn_sampler of the C export, with its scratch allocated for V at run time */
typedef struct charrnn_sampler {
    uint64_t s[4];
    float inv_temp;
    int greedy, top_k;
    double top_p;
    float *w;
    int32_t *order;
} charrnn_sampler;

#include "shared.h"   /* cr_expf, cr_sigmoid, cr_tanh, cr_cell_{lstm,gru,rnn}, the sampler */

/* ---- memory ---------------------------------------------------------------------------- */
extern unsigned char __heap_base;
static uintptr_t cr_top;

/* n bytes, 16-aligned, from the end of the heap (growing the memory); 0 if impossible */
EXPORT(cr_alloc) void *cr_alloc(int n)
{
    uintptr_t p, end, have;
    if (n < 0) return 0;
    if (!cr_top) cr_top = (uintptr_t)&__heap_base;
    p = (cr_top + 15) & ~(uintptr_t)15;
    end = p + (uintptr_t)n;
    if (end < p) return 0;
    have = __builtin_wasm_memory_size(0) * 65536u;
    if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535) / 65536) == (size_t)-1)
        return 0;
    cr_top = end;
    return (void *)p;
}

/* ---- matrices: float32 or per-row int8 -------------------------------------------------- */
typedef struct { const float *f; const int8_t *q; const float *s; } cr_mat;

static float cr_lanes(v128_t a, float tail)
{
    float s0 = wasm_f32x4_extract_lane(a, 0) + tail, s1 = wasm_f32x4_extract_lane(a, 1);
    float s2 = wasm_f32x4_extract_lane(a, 2), s3 = wasm_f32x4_extract_lane(a, 3);
    return (s0 + s1) + (s2 + s3);
}

/* The C export's tail: s0 += w[j] x[j] one column at a time, after the vector part. */
static v128_t cr_tail_f(v128_t a, const float *w, const float *x, int j, int cols)
{
    float s0 = wasm_f32x4_extract_lane(a, 0);
    for (; j < cols; j++) s0 += w[j] * x[j];
    return wasm_f32x4_replace_lane(a, 0, s0);
}

static v128_t cr_tail_q(v128_t a, const int8_t *w, const float *x, int j, int cols)
{
    float s0 = wasm_f32x4_extract_lane(a, 0);
    for (; j < cols; j++) s0 += (float)w[j] * x[j];
    return wasm_f32x4_replace_lane(a, 0, s0);
}

#define MADD(acc, w, xv) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(w, xv))

/* y[r] += M[r, :] . x, float32 rows */
static void cr_mv_f(float *y, const float *M, const float *x, int rows, int cols)
{
    int r = 0, j, c4 = cols & ~3;
    for (; r + 4 <= rows; r += 4) {
        const float *w0 = M + (long)r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
        for (j = 0; j < c4; j += 4) {
            v128_t xv = wasm_v128_load(x + j);
            MADD(a0, wasm_v128_load(w0 + j), xv);
            MADD(a1, wasm_v128_load(w1 + j), xv);
            MADD(a2, wasm_v128_load(w2 + j), xv);
            MADD(a3, wasm_v128_load(w3 + j), xv);
        }
        y[r] += cr_lanes(cr_tail_f(a0, w0, x, c4, cols), 0);
        y[r + 1] += cr_lanes(cr_tail_f(a1, w1, x, c4, cols), 0);
        y[r + 2] += cr_lanes(cr_tail_f(a2, w2, x, c4, cols), 0);
        y[r + 3] += cr_lanes(cr_tail_f(a3, w3, x, c4, cols), 0);
    }
    for (; r < rows; r++) {
        const float *w = M + (long)r * cols;
        v128_t a = wasm_f32x4_splat(0);
        for (j = 0; j < c4; j += 4) MADD(a, wasm_v128_load(w + j), wasm_v128_load(x + j));
        y[r] += cr_lanes(cr_tail_f(a, w, x, c4, cols), 0);
    }
}

/* 4 int8 at w as float32x4. Not f32x4.convert_i32x4_s: clang 14 turns that conversion
 * of sign-extended bytes into one scalar convert per lane. Instead the float whose bits
 * are those of 1.5 * 2^23 plus q is exactly 1.5 * 2^23 + q (|q| < 2^22), and subtracting
 * 1.5 * 2^23 leaves q, exactly. */
static v128_t cr_q4(const int8_t *w)
{
    v128_t q = wasm_i32x4_extend_low_i16x8(wasm_i16x8_extend_low_i8x16(wasm_v128_load32_zero(w)));
    v128_t f = wasm_i32x4_add(q, wasm_i32x4_splat(0x4B400000));
    return wasm_f32x4_sub(f, wasm_f32x4_splat(12582912.0f));
}

/* y[r] += s[r] * (q[r, :] . x), int8 rows: the sum over q x in float, scaled once */
static void cr_mv_q(float *y, const int8_t *Q, const float *S, const float *x, int rows,
                    int cols)
{
    int r = 0, j, c4 = cols & ~3;
    for (; r + 4 <= rows; r += 4) {
        const int8_t *w0 = Q + (long)r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
        for (j = 0; j < c4; j += 4) {
            v128_t xv = wasm_v128_load(x + j);
            MADD(a0, cr_q4(w0 + j), xv);
            MADD(a1, cr_q4(w1 + j), xv);
            MADD(a2, cr_q4(w2 + j), xv);
            MADD(a3, cr_q4(w3 + j), xv);
        }
        y[r] += S[r] * cr_lanes(cr_tail_q(a0, w0, x, c4, cols), 0);
        y[r + 1] += S[r + 1] * cr_lanes(cr_tail_q(a1, w1, x, c4, cols), 0);
        y[r + 2] += S[r + 2] * cr_lanes(cr_tail_q(a2, w2, x, c4, cols), 0);
        y[r + 3] += S[r + 3] * cr_lanes(cr_tail_q(a3, w3, x, c4, cols), 0);
    }
    for (; r < rows; r++) {
        const int8_t *w = Q + (long)r * cols;
        v128_t a = wasm_f32x4_splat(0);
        for (j = 0; j < c4; j += 4) MADD(a, cr_q4(w + j), wasm_v128_load(x + j));
        y[r] += S[r] * cr_lanes(cr_tail_q(a, w, x, c4, cols), 0);
    }
}

static void cr_mv(float *y, cr_mat M, const float *x, int rows, int cols)
{
    if (M.q) cr_mv_q(y, M.q, M.s, x, rows, cols);
    else cr_mv_f(y, M.f, x, rows, cols);
}

/* dst = M[row, :] */
static void cr_row(float *dst, cr_mat M, int row, int cols)
{
    int j;
    if (!M.q) { memcpy(dst, M.f + (long)row * cols, (size_t)cols * sizeof(float)); return; }
    for (j = 0; j < cols; j++) dst[j] = M.s[row] * (float)M.q[(long)row * cols + j];
}

/* ---- the model ------------------------------------------------------------------------- */
#define MAX_LAYERS 64
static cr_mat cr_first, cr_dec, cr_wi[MAX_LAYERS], cr_wr[MAX_LAYERS];
static const float *cr_dec_b, *cr_bi[MAX_LAYERS], *cr_br[MAX_LAYERS];
static float *cr_h, *cr_c, *cr_a, *cr_g, *cr_x, *cr_z;   /* state and scratch */
static int32_t *cr_out;                                   /* ids of cr_generate */
static charrnn_sampler cr_sp;

/* The descriptor at the start of the weights (int32, little-endian; offsets in bytes from
 * the descriptor, -1 for none). See charrnn/export/web_weights.py. */
enum { D_MAGIC, D_VERSION, D_CELL, D_L, D_H, D_E, D_V, D_INT8, D_TABLE, D_BYTES, D_FIXED };
#define MAGIC 0x57524843   /* "CHRW" */

static const unsigned char *cr_blob;
static int cr_nblob;

/* a pointer to `count` items of `size` bytes at offset off of the blob, or 0 */
static const void *cr_at(int32_t off, long count, int size)
{
    if (off < 0 || (off & 3) || count < 0 || off > cr_nblob
        || count * size > (long)cr_nblob - off) return 0;
    return cr_blob + off;
}

static int cr_matrix(cr_mat *m, const int32_t *d, long rows, long cols)
{
    m->q = 0;
    m->f = 0;
    m->s = 0;
    if (cr_int8) {
        m->q = (const int8_t *)cr_at(d[0], rows * cols, 1);
        m->s = (const float *)cr_at(d[1], rows, 4);
        return m->q && m->s;
    }
    m->f = (const float *)cr_at(d[0], rows * cols, 4);
    return m->f != 0;
}

/* Read the weights (n bytes at blob, which must stay alive); 0 or a negative error:
 * -1 not charrnn weights, -2 another version, -3 bad sizes, -4 a bad offset, -5 memory */
EXPORT(cr_load) int cr_load(const unsigned char *blob, int n)
{
    const int32_t *d = (const int32_t *)blob;
    int k, i;
    long GH;
    cr_blob = blob;
    cr_nblob = n;
    if (n < D_FIXED * 4 || d[D_MAGIC] != MAGIC) return -1;
    if (d[D_VERSION] != 1) return -2;
    cr_kind = d[D_CELL];
    cr_L = d[D_L]; cr_H = d[D_H]; cr_E = d[D_E]; cr_V = d[D_V];
    cr_int8 = d[D_INT8]; cr_table = d[D_TABLE];
    if (cr_kind < 0 || cr_kind > 2 || cr_L < 1 || cr_L > MAX_LAYERS || cr_H < 1 || cr_E < 1
        || cr_V < 1 || cr_H > 1 << 16 || cr_E > 1 << 16 || cr_V > 1 << 24 || d[D_BYTES] != n)
        return -3;
    cr_G = cr_kind == 0 ? 4 : cr_kind == 1 ? 3 : 1;
    GH = (long)cr_G * cr_H;
    i = D_FIXED;
    if (n < (i + 5 + 6 * cr_L) * 4) return -4;
    if (!cr_matrix(&cr_first, d + i, cr_V, cr_table ? GH : cr_E)) return -4;
    if (!cr_matrix(&cr_dec, d + i + 2, cr_V, cr_H)) return -4;
    if (!(cr_dec_b = (const float *)cr_at(d[i + 4], cr_V, 4))) return -4;
    i += 5;
    for (k = 0; k < cr_L; k++, i += 6) {
        int fused = cr_kind != 1 && k > 0, tab = k == 0 && cr_table;
        cr_wi[k].f = 0; cr_wi[k].q = 0; cr_wr[k].f = 0; cr_wr[k].q = 0;
        cr_bi[k] = 0; cr_br[k] = 0;
        if (!tab && !cr_matrix(&cr_wi[k], d + i, GH, k == 0 ? cr_E : fused ? 2L * cr_H : cr_H))
            return -4;
        if ((cr_kind == 1 || k == 0) && !cr_matrix(&cr_wr[k], d + i + 2, GH, cr_H)) return -4;
        if (!tab && !(cr_bi[k] = (const float *)cr_at(d[i + 4], GH, 4))) return -4;
        if (cr_kind == 1 && !(cr_br[k] = (const float *)cr_at(d[i + 5], GH, 4))) return -4;
    }
    cr_h = cr_alloc(4 * cr_L * cr_H);
    cr_c = cr_alloc(4 * cr_L * cr_H);
    cr_a = cr_alloc(4 * (int)GH);
    cr_g = cr_alloc(4 * (int)GH);
    cr_x = cr_alloc(4 * cr_E);
    cr_z = cr_alloc(4 * cr_V);
    cr_sp.w = cr_alloc(4 * cr_V);
    cr_sp.order = cr_alloc(4 * cr_V);
    cr_out = cr_alloc(4 * 4096);
    if (!cr_h || !cr_c || !cr_a || !cr_g || !cr_x || !cr_z || !cr_sp.w || !cr_sp.order || !cr_out)
        return -5;
    memset(cr_h, 0, 4 * (size_t)cr_L * cr_H);
    memset(cr_c, 0, 4 * (size_t)cr_L * cr_H);
    charrnn_sampler_init(&cr_sp, 0, 1.0, 0, 1.0);
    return 0;
}

/* zero state */
EXPORT(cr_reset) void cr_reset(void)
{
    memset(cr_h, 0, 4 * (size_t)cr_L * cr_H);
    memset(cr_c, 0, 4 * (size_t)cr_L * cr_H);
}

/* advance the state by one input id (charrnn_feed of the C export) */
EXPORT(cr_feed) void cr_feed(int token)
{
    int k, H = cr_H;
    size_t gh = 4 * (size_t)GH_;
    if (token < 0 || token >= cr_V) token = 0;   /* never read outside the tables */
    if (cr_table) {
        cr_row(cr_a, cr_first, token, GH_);
    } else {
        cr_row(cr_x, cr_first, token, cr_E);
        memcpy(cr_a, cr_bi[0], gh);
        cr_mv(cr_a, cr_wi[0], cr_x, GH_, cr_E);
    }
    for (k = 0; k < cr_L; k++) {
        float *h = cr_h + (long)k * H;
        if (k > 0) {
            memcpy(cr_a, cr_bi[k], gh);
            /* LSTM/RNN: [h_{k-1} | h_k] @ [W_ih | W_hh]^T, adjacent rows of cr_h */
            cr_mv(cr_a, cr_wi[k], h - H, GH_, cr_kind == 1 ? H : 2 * H);
        }
        if (cr_kind == 1) {
            memcpy(cr_g, cr_br[k], gh);
            cr_mv(cr_g, cr_wr[k], h, GH_, H);
            cr_cell_gru(cr_a, cr_g, h);
        } else {
            if (k == 0) cr_mv(cr_a, cr_wr[0], h, GH_, H);
            if (cr_kind == 0) cr_cell_lstm(cr_a, cr_c + (long)k * H, h);
            else cr_cell_rnn(cr_a, h);
        }
    }
}

/* advance by one input id; the logits (V) of the next character */
EXPORT(cr_step) const float *cr_step(int token)
{
    cr_feed(token);
    memcpy(cr_z, cr_dec_b, 4 * (size_t)cr_V);
    cr_mv(cr_z, cr_dec, cr_h + (long)(cr_L - 1) * cr_H, cr_V, cr_H);
    return cr_z;
}

/* the logits of the last cr_step */
EXPORT(cr_logits) const float *cr_logits(void) { return cr_z; }

/* the sampler's stream: xoshiro256** seeded through splitmix64 with seed (hi:lo) */
EXPORT(cr_seed) void cr_seed(uint32_t lo, uint32_t hi)
{
    float inv = cr_sp.inv_temp;
    int greedy = cr_sp.greedy, top_k = cr_sp.top_k;
    double top_p = cr_sp.top_p;
    charrnn_sampler_init(&cr_sp, ((uint64_t)hi << 32) | lo, 1.0, 0, 1.0);
    cr_sp.inv_temp = inv; cr_sp.greedy = greedy; cr_sp.top_k = top_k; cr_sp.top_p = top_p;
}

/* temperature (0: greedy), top_k (0: off), top_p (1: off), keeping the stream */
EXPORT(cr_options) void cr_options(double temperature, int top_k, double top_p)
{
    uint64_t s[4];
    memcpy(s, cr_sp.s, sizeof s);
    charrnn_sampler_init(&cr_sp, 0, temperature, top_k, top_p);
    memcpy(cr_sp.s, s, sizeof s);
}

/* the next id drawn from the logits of the last cr_step */
EXPORT(cr_sample) int cr_sample(void) { return charrnn_sample(&cr_sp, cr_z); }

/* n (<= 4096) characters: from input id `token`, step and draw, n times; the ids are in
 * cr_ids(); returns the last id */
EXPORT(cr_generate) int cr_generate(int token, int n)
{
    int i;
    if (n > 4096) n = 4096;
    for (i = 0; i < n; i++) token = cr_out[i] = charrnn_sample(&cr_sp, cr_step(token));
    return token;
}

EXPORT(cr_ids) int32_t *cr_ids(void) { return cr_out; }

/* softmax(logits / temperature) of the last cr_step, in cr_sp.w (charrnn's exp) */
EXPORT(cr_probs) const float *cr_probs(double temperature)
{
    float m = cr_z[0], inv = (float)(temperature > 0 ? 1.0 / temperature : 1e30), *w = cr_sp.w;
    double total = 0;
    int i;
    for (i = 1; i < cr_V; i++) m = cr_z[i] > m ? cr_z[i] : m;
    for (i = 0; i < cr_V; i++) total += w[i] = cr_expf((cr_z[i] - m) * inv);
    for (i = 0; i < cr_V; i++) w[i] = (float)(w[i] / total);
    return w;
}
