/* Drawing one character from the decoder's logits, and the random generator it draws with.
 * Used by _sample.pyx inside its GIL-free generation loop, so nothing here allocates or
 * can fail: every function returns a valid id in [0, V) whatever the logits hold.
 *
 * ---- RNG -----------------------------------------------------------------------------
 * xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number generators",
 * 2018): 256 bits of state s[0..3], period 2^256 - 1, output rotl(s1 * 5, 7) * 9.
 * Seeding: the 4 state words are the first 4 outputs of splitmix64 started at the 64-bit
 * seed (splitmix64 is a bijection of its counter, so the state is never all zero).
 * Streams: stream j starts from the seeded state advanced by j jumps of 2^128 draws (the
 * generator's jump polynomial), so the streams of a batch never overlap.
 * Uniform doubles in [0, 1): the top 53 bits of an output times 2^-53.
 * Independent of NumPy's and of the training RNG: the same seed gives the same text on
 * every platform and NumPy version.
 *
 * ---- picking a character ---------------------------------------------------------------
 * Greedy (temperature 0): the first id with the largest logit.
 * Otherwise weights w_i = exp((z_i - max z) / T), then
 *   top-k  keep the k ids with the largest logits (ties: the smaller id first);
 *   top-p  of those, keep the smallest prefix, in decreasing-logit order, whose mass is at
 *          least p times the mass of all kept ids (the nucleus);
 * then one uniform u picks id i with probability w_i / sum(kept w). The candidates are
 * ordered by a binary heap popped one at a time, so only as many ids as are kept get
 * sorted: O(V + n log V) for n kept ids.
 */
#ifndef CHARRNN_SAMPLING_H
#define CHARRNN_SAMPLING_H

#include <stdint.h>
#include "cellmath.h"

/* ---- xoshiro256** ------------------------------------------------------------------- */

static inline uint64_t cr_rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* splitmix64 (Steele, Lea & Flood 2014; Vigna's constants): advances *x, returns a
 * well-mixed 64-bit value. Only used to expand a seed into a full state. */
static inline uint64_t cr_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t cr_rng_next(uint64_t *s)
{
    uint64_t out = cr_rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = cr_rotl64(s[3], 45);
    return out;
}

/* Advance s by 2^128 draws: s := sum over the set bits of the jump polynomial of the
 * states passed on the way (xoshiro's jump function). */
static void cr_rng_jump(uint64_t *s)
{
    static const uint64_t poly[4] = {0x180ec6d33cfd0abaULL, 0xd5a61266f0c9392cULL,
                                     0xa9582618e03fc9aaULL, 0x39abdc4529b1661cULL};
    uint64_t acc[4] = {0, 0, 0, 0};
    for (int w = 0; w < 4; w++) {
        for (int b = 0; b < 64; b++) {
            if (poly[w] & ((uint64_t)1 << b)) {
                acc[0] ^= s[0];
                acc[1] ^= s[1];
                acc[2] ^= s[2];
                acc[3] ^= s[3];
            }
            cr_rng_next(s);
        }
    }
    s[0] = acc[0];
    s[1] = acc[1];
    s[2] = acc[2];
    s[3] = acc[3];
}

/* states (K, 4): stream j = seeded state advanced by j jumps. */
static void cr_rng_seed(uint64_t *states, idx_t K, uint64_t seed)
{
    uint64_t x = seed;
    uint64_t s[4];
    for (int w = 0; w < 4; w++) s[w] = cr_splitmix64(&x);
    for (idx_t j = 0; j < K; j++) {
        memcpy(states + 4 * j, s, sizeof s);
        cr_rng_jump(s);
    }
}

static inline double cr_rng_uniform(uint64_t *s)
{
    return (double)(cr_rng_next(s) >> 11) * (1.0 / 9007199254740992.0);  /* 2^-53 */
}

/* ---- picking one id ------------------------------------------------------------------- */

/* First id with the largest logit (a NaN logit is never larger: the result stays valid). */
static idx_t cr_argmax(const float *z, idx_t V)
{
    idx_t best = 0;
    for (idx_t i = 1; i < V; i++)
        if (z[i] > z[best]) best = i;
    return best;
}

/* cr_weights(w, z, m, inv_temp, V): w = exp((z - m) * inv_temp), vectorised on every ISA
 * tier (tier_impl.h, through dispatch.h). inv_temp is finite (the caller caps it), so the
 * largest logit gets exactly 1 and no 0 * inf appears; the fast exp clamps very negative
 * arguments, so every weight is > 0 (at least e^-87). */

/* Is id a ahead of id b in decreasing-logit order (ties: smaller id first)? */
static inline int cr_ahead(const float *z, int32_t a, int32_t b)
{
    return z[a] > z[b] || (z[a] == z[b] && a < b);
}

/* Restore the heap property below position i of heap[0..n) (the root is the id ahead
 * of all others). */
static void cr_sift(int32_t *heap, idx_t n, idx_t i, const float *z)
{
    int32_t x = heap[i];
    for (;;) {
        idx_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cr_ahead(z, heap[c + 1], heap[c])) c++;
        if (!cr_ahead(z, heap[c], x)) break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = x;
}

/* Pop the heap's root into the slot the heap gives up: the j-th popped id (j from 0)
 * lands in order[V - 1 - j]. Returns the popped id. */
static inline int32_t cr_pop(int32_t *order, idx_t *n, const float *z)
{
    int32_t top = order[0];
    *n -= 1;
    order[0] = order[*n];
    order[*n] = top;
    if (*n > 1) cr_sift(order, *n, 0, z);
    return top;
}

/* One id from logits z (V,) with temperature > 0 (as inv_temp = 1/T, finite), top_k in
 * [1, V] (V: off), top_p in (0, 1] (1: off), and a uniform u in [0, 1).
 * Scratch: w (V floats), order (V ids). */
static idx_t cr_pick(const float *z, idx_t V, float inv_temp, idx_t top_k, double top_p,
                     double u, float *w, int32_t *order)
{
    float m = z[0];
    for (idx_t i = 1; i < V; i++) m = z[i] > m ? z[i] : m;
    cr_weights(w, z, m, inv_temp, V);

    if (top_k >= V && !(top_p < 1.0)) {
        /* No filter: the inverse CDF in id order. */
        double total = 0, acc = 0;
        for (idx_t i = 0; i < V; i++) total += w[i];
        double target = u * total;
        for (idx_t i = 0; i < V; i++) {
            acc += w[i];
            if (acc > target) return i;
        }
        return V - 1;   /* u * total rounded up to total */
    }

    idx_t heap = V, kept = 0;
    double mass = 0;    /* of the kept ids */
    for (idx_t i = 0; i < V; i++) order[i] = (int32_t)i;
    for (idx_t i = V / 2 - 1; i >= 0; i--) cr_sift(order, V, i, z);
    idx_t k = top_k < V ? top_k : V;
    if (top_p < 1.0) {
        double total = 0;
        if (k < V) {
            for (idx_t j = 0; j < k; j++) total += w[cr_pop(order, &heap, z)];
            while (kept < k) {
                mass += w[order[V - 1 - kept]];
                kept++;
                if (mass >= top_p * total) break;
            }
        } else {
            for (idx_t i = 0; i < V; i++) total += w[i];
            while (kept < V) {
                mass += w[cr_pop(order, &heap, z)];
                kept++;
                if (mass >= top_p * total) break;
            }
        }
    } else {
        for (kept = 0; kept < k; kept++) mass += w[cr_pop(order, &heap, z)];
    }

    double target = u * mass, acc = 0;
    for (idx_t j = 0; j < kept; j++) {
        int32_t id = order[V - 1 - j];
        acc += w[id];
        if (acc > target) return id;
    }
    return order[V - kept];   /* u * mass rounded up to mass: the last kept id */
}

#endif
