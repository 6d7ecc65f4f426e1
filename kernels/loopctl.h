/* Loop control (--no-repeat N) and beam search helpers for _sample.pyx's GIL-free loop.
 * Nothing here allocates or can fail; the caller sizes every buffer beforehand.
 *
 * ---- no-repeat ------------------------------------------------------------------------
 * Per stream: the set of N-grams (as 64-bit hashes) the stream has generated so far, the
 * rolling hash `pref` of its last N-1 ids, a ring of those ids and `len`, the number of
 * ids generated. A candidate id c is banned when pref * B + (c + 1) is in the set: emitting
 * c would complete an N-gram that already occurs in the generated text.
 *   hash(w_0 .. w_{m-1}) = sum_i (w_i + 1) B^(m-1-i)  (mod 2^64), B odd
 * so dropping the oldest id and appending c is pref := (pref - (old + 1) B^(N-2)) B + c + 1.
 * The set is open addressing (linear probing) over cap = 2^j slots holding mixed hashes
 * (splitmix64's finaliser; 0 marks an empty slot, so a mixed 0 is stored as 1). Two
 * different N-grams share a 64-bit hash with probability ~ n^2 / 2^65: never in practice.
 *
 * ---- beam search ----------------------------------------------------------------------
 * cr_beam_select: the K best of the K*V one-character extensions of K beams, scored by
 * score[n] + log softmax(z_n)[i] in double; ties go to the smaller n*V + i, so the result
 * is deterministic. A size-K heap keeps the K best seen (root = the worst of them).
 * cr_gather_rows: rows[k] := rows[parent[k]] for k < K through a scratch copy (the state
 * reordering after a selection).
 */
#ifndef CHARRNN_LOOPCTL_H
#define CHARRNN_LOOPCTL_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "cellmath.h"

#define CR_NR_B 0x100000001b3ULL   /* FNV-1's 64-bit prime: odd, so the map is invertible */

static inline uint64_t cr_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z ? z : 1;
}

static inline int cr_set_has(const uint64_t *keys, idx_t cap, uint64_t h)
{
    uint64_t k = cr_mix64(h);
    idx_t i = (idx_t)(k & (uint64_t)(cap - 1));
    while (keys[i]) {
        if (keys[i] == k) return 1;
        i = (i + 1) & (cap - 1);
    }
    return 0;
}

/* Insert an already mixed key; 1 if it was new. */
static inline int cr_set_put(uint64_t *keys, idx_t cap, uint64_t k)
{
    idx_t i = (idx_t)(k & (uint64_t)(cap - 1));
    while (keys[i]) {
        if (keys[i] == k) return 0;
        i = (i + 1) & (cap - 1);
    }
    keys[i] = k;
    return 1;
}

/* banned[c] = 1 where emitting c completes a seen N-gram; returns how many are banned. */
static idx_t cr_nr_banned(const uint64_t *keys, idx_t cap, int64_t len, uint64_t pref,
                          idx_t N, idx_t V, uint8_t *banned)
{
    idx_t nb = 0;
    if (len < N - 1) {
        memset(banned, 0, (size_t)V);
        return 0;
    }
    for (idx_t c = 0; c < V; c++) {
        banned[c] = (uint8_t)cr_set_has(keys, cap, pref * CR_NR_B + (uint64_t)(c + 1));
        nb += banned[c];
    }
    return nb;
}

/* Record that the stream emitted id. Bpow = B^(N-2). */
static void cr_nr_push(uint64_t *keys, idx_t cap, int64_t *count, int64_t *len,
                       uint64_t *pref, int32_t *ring, idx_t N, uint64_t Bpow, int32_t id)
{
    idx_t W = N - 1;
    uint64_t c = (uint64_t)id + 1;
    if (*len >= W) {
        *count += cr_set_put(keys, cap, cr_mix64(*pref * CR_NR_B + c));
        uint64_t old = (uint64_t)ring[*len % W] + 1;
        *pref = (*pref - old * Bpow) * CR_NR_B + c;
    } else {
        *pref = *pref * CR_NR_B + c;
    }
    ring[*len % W] = id;
    *len += 1;
}

/* ---- beam search ------------------------------------------------------------------- */

/* Is candidate (sa, ca) better than (sb, cb)? Higher score; on a tie the smaller index. */
static inline int cr_beam_better(double sa, idx_t ca, double sb, idx_t cb)
{
    return sa > sb || (sa == sb && ca < cb);
}

/* Sift down in a heap whose root is the worst candidate. */
static void cr_beam_sift(double *hs, idx_t *hc, idx_t n, idx_t i)
{
    double s = hs[i];
    idx_t c0 = hc[i];
    for (;;) {
        idx_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cr_beam_better(hs[c], hc[c], hs[c + 1], hc[c + 1])) c++;
        if (!cr_beam_better(s, c0, hs[c], hc[c])) break;
        hs[i] = hs[c];
        hc[i] = hc[c];
        i = c;
    }
    hs[i] = s;
    hc[i] = c0;
}

/* logits (K, V); score (K): -INFINITY marks an unused beam; banned (K, V) or NULL.
 * Out, best first: new_score, parent, id (K each); returns how many were found (< K
 * only when fewer than K finite candidates exist). Scratch: lse (K), hs (K), hc (K). */
static idx_t cr_beam_select(const float *logits, idx_t K, idx_t V, const double *score,
                            const uint8_t *banned, double *new_score, int32_t *parent,
                            int32_t *id, double *lse, double *hs, idx_t *hc)
{
    idx_t n_heap = 0;
    for (idx_t n = 0; n < K; n++) {
        if (!(score[n] > -INFINITY)) continue;
        const float *z = logits + n * V;
        double m = z[0], acc = 0;
        for (idx_t i = 1; i < V; i++) m = z[i] > m ? z[i] : m;
        for (idx_t i = 0; i < V; i++) acc += exp((double)z[i] - m);
        lse[n] = m + log(acc);
        for (idx_t i = 0; i < V; i++) {
            if (banned && banned[n * V + i]) continue;
            double s = score[n] + ((double)z[i] - lse[n]);
            idx_t c = n * V + i;
            if (!(s > -INFINITY)) continue;          /* also drops NaN */
            if (n_heap < K) {
                /* push: sift up (the parent must be worse than or equal to the child) */
                idx_t j = n_heap++;
                while (j > 0) {
                    idx_t p = (j - 1) / 2;
                    if (!cr_beam_better(hs[p], hc[p], s, c)) break;
                    hs[j] = hs[p];
                    hc[j] = hc[p];
                    j = p;
                }
                hs[j] = s;
                hc[j] = c;
            } else if (cr_beam_better(s, c, hs[0], hc[0])) {
                hs[0] = s;
                hc[0] = c;
                cr_beam_sift(hs, hc, n_heap, 0);
            }
        }
    }
    /* Pop the worst first: fill the outputs from the back. */
    idx_t found = n_heap;
    while (n_heap > 0) {
        idx_t j = n_heap - 1;
        new_score[j] = hs[0];
        parent[j] = (int32_t)(hc[0] / V);
        id[j] = (int32_t)(hc[0] % V);
        n_heap--;
        hs[0] = hs[n_heap];
        hc[0] = hc[n_heap];
        if (n_heap > 1) cr_beam_sift(hs, hc, n_heap, 0);
    }
    for (idx_t j = found; j < K; j++) {
        new_score[j] = -INFINITY;
        parent[j] = 0;
        id[j] = 0;
    }
    return found;
}

/* rows (K, rowbytes): rows[k] := rows[parent[k]], through scratch (K, rowbytes). */
static void cr_gather_rows(void *rows, size_t rowbytes, idx_t K, const int32_t *parent,
                           void *scratch)
{
    char *r = (char *)rows, *s = (char *)scratch;
    int same = 1;
    for (idx_t k = 0; k < K; k++) same &= parent[k] == k;
    if (same) return;
    for (idx_t k = 0; k < K; k++)
        memcpy(s + k * rowbytes, r + (size_t)parent[k] * rowbytes, rowbytes);
    memcpy(r, s, (size_t)K * rowbytes);
}

#endif
