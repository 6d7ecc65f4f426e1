/* Philox4x32-10 (Salmon, Moraes, Dror, Shaw, SC 2011), the counter-based generator
 * behind charrnn's dropout masks: see _dropout.pyx for how counters are laid out.
 *
 * philox_row fills words[0 .. 4*nblocks) with the outputs of blocks b0 .. b0+nblocks-1
 * (counter (b, c1, c2, c3), key (k0, k1)). PHILOX_LANES blocks run side by side in
 * plain arrays so that the compiler turns the rounds into vector multiplies.
 */
#ifndef CHARRNN_PHILOX_H
#define CHARRNN_PHILOX_H
#include <stdint.h>

#define PHILOX_LANES 8

static inline void philox_block(uint32_t c[4], uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t y0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
        uint32_t y2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
        c[0] = y0; c[1] = (uint32_t)p1; c[2] = y2; c[3] = (uint32_t)p0;
        k0 += 0x9E3779B9u;   /* the Weyl key schedule */
        k1 += 0xBB67AE85u;
    }
}

static inline void philox_lanes(uint32_t b0, uint32_t c1, uint32_t c2, uint32_t c3,
                                uint32_t k0, uint32_t k1, uint32_t *restrict out) {
    uint32_t x0[PHILOX_LANES], x1[PHILOX_LANES], x2[PHILOX_LANES], x3[PHILOX_LANES];
    for (int i = 0; i < PHILOX_LANES; i++) {
        x0[i] = b0 + (uint32_t)i; x1[i] = c1; x2[i] = c2; x3[i] = c3;
    }
    for (int r = 0; r < 10; r++) {
        for (int i = 0; i < PHILOX_LANES; i++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * x0[i], p1 = (uint64_t)0xCD9E8D57u * x2[i];
            uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1[i] ^ k0;
            uint32_t y2 = (uint32_t)(p0 >> 32) ^ x3[i] ^ k1;
            x0[i] = y0; x1[i] = (uint32_t)p1; x2[i] = y2; x3[i] = (uint32_t)p0;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int i = 0; i < PHILOX_LANES; i++) {
        out[4 * i] = x0[i]; out[4 * i + 1] = x1[i]; out[4 * i + 2] = x2[i]; out[4 * i + 3] = x3[i];
    }
}

/* words[0 .. 4*nblocks rounded up to whole lane groups) for blocks b0, b0 + 1, ... */
static inline void philox_row(uint32_t b0, int64_t nblocks, uint32_t c1, uint32_t c2,
                              uint32_t c3, uint32_t k0, uint32_t k1, uint32_t *words) {
    for (int64_t b = 0; b < nblocks; b += PHILOX_LANES)
        philox_lanes(b0 + (uint32_t)b, c1, c2, c3, k0, k1, words + 4 * b);
}
#endif
