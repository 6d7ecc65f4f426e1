/* The arithmetic peaks of one core, for bench/peak_bf16.py: loops of one instruction on
 * 16 independent accumulators (more than latency x throughput on any AVX-512 core, so
 * the loop runs at the instruction's throughput), nothing else but the loop counter.
 *
 *   peak_bf16(n)    n x 16 VDPBF16PS zmm:  64 flops each (16 lanes x 2 products x 2)
 *   peak_fma512(n)  n x 16 VFMADD231PS zmm: 32 flops each (16 lanes x 2)
 *   peak_amx(n)     n x 4 TDPBF16PS on full tiles (16 x 32 times 32 x 16): 16,384 flops
 *                   each, four accumulator tiles (latency / throughput of one is under 4
 *                   on Sapphire Rapids); the process must have AMX leave already
 *                   (charrnn._isa asks for it at import)
 *
 * The inputs keep the sums small and normal (no overflow, no subnormals, which would
 * change the timing). The sum of the accumulators is returned so that nothing is dead.
 * Built by the script with the compiler at hand (GCC >= 10, Clang >= 9). */
#include <immintrin.h>
#include <stdint.h>

#define ACC16(op)                                                                   \
    c0 = op(c0); c1 = op(c1); c2 = op(c2); c3 = op(c3); c4 = op(c4); c5 = op(c5);   \
    c6 = op(c6); c7 = op(c7); c8 = op(c8); c9 = op(c9); c10 = op(c10);              \
    c11 = op(c11); c12 = op(c12); c13 = op(c13); c14 = op(c14); c15 = op(c15);
#define SUM16                                                                       \
    _mm512_reduce_add_ps(_mm512_add_ps(                                             \
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),  \
                      _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7))), \
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)), \
                      _mm512_add_ps(_mm512_add_ps(c12, c13), _mm512_add_ps(c14, c15)))))

/* 16 accumulators with different starts: equal ones would be merged into one chain */
#define INIT16                                                                      \
    __m512 c0 = _mm512_set1_ps(0.0f), c1 = _mm512_set1_ps(1.0f), c2 = _mm512_set1_ps(2.0f), \
           c3 = _mm512_set1_ps(3.0f), c4 = _mm512_set1_ps(4.0f), c5 = _mm512_set1_ps(5.0f), \
           c6 = _mm512_set1_ps(6.0f), c7 = _mm512_set1_ps(7.0f), c8 = _mm512_set1_ps(8.0f), \
           c9 = _mm512_set1_ps(9.0f), c10 = _mm512_set1_ps(10.0f), c11 = _mm512_set1_ps(11.0f), \
           c12 = _mm512_set1_ps(12.0f), c13 = _mm512_set1_ps(13.0f), c14 = _mm512_set1_ps(14.0f), \
           c15 = _mm512_set1_ps(15.0f);

__attribute__((target("avx512f,avx512bf16"))) float peak_bf16(int64_t n)
{
    /* pairs (1.0, 1.0) and (2^-20, 2^-20): each instruction adds 2^-19 per lane */
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x35803580);
    INIT16
#define DP(c) _mm512_dpbf16_ps(c, a, b)
    for (int64_t i = 0; i < n; i++) {
        __asm__ volatile("" : "+v"(a), "+v"(b));   /* keep the loop: no hoisting of a, b */
        ACC16(DP)
    }
#undef DP
    return SUM16;
}

__attribute__((target("avx512f,fma"))) float peak_fma512(int64_t n)
{
    __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(0x1p-20f);
    INIT16
#define FMA(c) _mm512_fmadd_ps(a, b, c)
    for (int64_t i = 0; i < n; i++) {
        __asm__ volatile("" : "+v"(a), "+v"(b));
        ACC16(FMA)
    }
#undef FMA
    return SUM16;
}

/* The tile configuration LDTILECFG reads: palette 1, every tile 16 rows of 64 bytes. */
struct peak_tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

__attribute__((target("amx-tile,amx-bf16"))) float peak_amx(int64_t n)
{
    static uint16_t ones[16 * 32];          /* bf16 2^-20: sums stay small and normal */
    float out[16 * 16];
    struct peak_tilecfg cfg __attribute__((aligned(64)));
    __builtin_memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    for (int i = 0; i < 16 * 32; i++) ones[i] = 0x3580;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, ones, 64);
    _tile_loadd(5, ones, 64);
    _tile_loadd(6, ones, 64);
    _tile_loadd(7, ones, 64);
    for (int64_t i = 0; i < n; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    return out[0];
}
