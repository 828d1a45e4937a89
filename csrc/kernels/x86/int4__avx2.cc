// AVX2 tile of 4-bit weights in groups (Int4Tile in lowbit/kernels.h; oracle
// ../scalar/int4__scalar.cc). A k-group's 64 codes are one 32-byte s4 block whose low nibbles
// are columns 0-7 and high nibbles columns 8-15 (4 k each), so a load, two vpand and a vpsrlw
// give both column halves as bytes in [0, 15]; vpmaddubsw multiplies them (unsigned) with the
// row's 4 activations (signed) broadcast. Its pair sums are at most 15 * 128 * 2 = 3,840 in
// magnitude, so one row sums up to 8 k-groups in int16 before a vpmaddwd with ones; two rows
// (which would need 20 registers that way) take vpmaddwd after every k-group. At a group's end:
// minus zero * asum (vpmulld), to float, and one vfmadd with the group's scales (vcvtph2ps).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "lowbit/kernels.h"
#include "s4__avx2.h"

namespace lowbit {
namespace kernels {
namespace {

// One row's k-group, in one asm statement each so that the accumulators stay in their registers
// (GCC 12 copies them around with the intrinsics; see gemm__avx2.cc): x = the row's 4 int8
// activations broadcast, then vpmaddubsw of the nibbles (unsigned) with x (signed) for both
// column halves, added in int16 (Q4_STEP16) or, through vpmaddwd with ones, in int32 (Q4_STEP32).
#define Q4_STEP16(acc0, acc1, aptr)                                                           \
  __asm__("vpbroadcastd %[a], %[x]\n\t"                                                        \
          "vpmaddubsw %[x], %[b0], %[t]\n\tvpaddw %[t], %[c0], %[c0]\n\t"                     \
          "vpmaddubsw %[x], %[b1], %[t]\n\tvpaddw %[t], %[c1], %[c1]"                           \
          : [c0] "+x"(acc0), [c1] "+x"(acc1), [x] "=&x"(x), [t] "=&x"(prod)                     \
          : [a] "m"(*reinterpret_cast<const int*>(aptr)), [b0] "x"(b0), [b1] "x"(b1))
#define Q4_STEP32(acc0, acc1, aptr)                                                           \
  __asm__("vpbroadcastd %[a], %[x]\n\t"                                                        \
          "vpmaddubsw %[x], %[b0], %[t]\n\tvpmaddwd %[one], %[t], %[t]\n\t"                   \
          "vpaddd %[t], %[c0], %[c0]\n\t"                                                      \
          "vpmaddubsw %[x], %[b1], %[t]\n\tvpmaddwd %[one], %[t], %[t]\n\t"                   \
          "vpaddd %[t], %[c1], %[c1]"                                                          \
          : [c0] "+x"(acc0), [c1] "+x"(acc1), [x] "=&x"(x), [t] "=&x"(prod)                     \
          : [a] "m"(*reinterpret_cast<const int*>(aptr)), [b0] "x"(b0), [b1] "x"(b1),         \
            [one] "x"(ones))

template <int MR>
void q4_tile(const Int4Tile& t) {
  const __m256i mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256 y00 = _mm256_setzero_ps(), y01 = y00, y10 = y00, y11 = y00;
  const uint8_t* b = t.b;
  const int8_t* a0 = t.a;
  const int8_t* a1 = t.a + t.lda;
  for (size_t g = 0; g < t.ngroups; g++) {
    __m256i g00 = _mm256_setzero_si256(), g01 = g00, g10 = g00, g11 = g00;  // the group's sums
    const size_t k1 = (g + 1) * t.group;
    for (size_t k = g * t.group; k < k1;) {
      __m256i b0, b1, x, prod;
      if (MR == 1) {  // up to 8 k-groups in int16
        __m256i s0 = _mm256_setzero_si256(), s1 = s0;
        const size_t end = std::min(k1, k + 32);
        for (; k < end; k += 4, b += 32) {
          _mm_prefetch(reinterpret_cast<const char*>(b + 512), _MM_HINT_T0);
          s4_nibbles_avx2(b, mask, &b0, &b1);
          Q4_STEP16(s0, s1, a0 + k);
        }
        g00 = _mm256_add_epi32(g00, _mm256_madd_epi16(s0, ones));
        g01 = _mm256_add_epi32(g01, _mm256_madd_epi16(s1, ones));
      } else {
        s4_nibbles_avx2(b, mask, &b0, &b1);
        Q4_STEP32(g00, g01, a0 + k);
        Q4_STEP32(g10, g11, a1 + k);
        k += 4;
        b += 32;
      }
    }
    // acc = sums - zero * asum, then y = fma(scale, float(acc), y)
    const __m128i zb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.zero + g * 16));
    const __m256i z0 = _mm256_cvtepu8_epi32(zb), z1 = _mm256_cvtepu8_epi32(_mm_srli_si128(zb, 8));
    const __m128i sh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.scale + g * 16));
    const __m128i sh1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.scale + g * 16 + 8));
    const __m256 sc0 = _mm256_cvtph_ps(sh), sc1 = _mm256_cvtph_ps(sh1);
    const __m256i as0 = _mm256_set1_epi32(t.asum[g]);
    y00 = _mm256_fmadd_ps(sc0, _mm256_cvtepi32_ps(_mm256_sub_epi32(g00, _mm256_mullo_epi32(z0, as0))), y00);
    y01 = _mm256_fmadd_ps(sc1, _mm256_cvtepi32_ps(_mm256_sub_epi32(g01, _mm256_mullo_epi32(z1, as0))), y01);
    if (MR > 1) {
      const __m256i as1 = _mm256_set1_epi32(t.asum[t.ngroups + g]);
      y10 = _mm256_fmadd_ps(sc0, _mm256_cvtepi32_ps(_mm256_sub_epi32(g10, _mm256_mullo_epi32(z0, as1))), y10);
      y11 = _mm256_fmadd_ps(sc1, _mm256_cvtepi32_ps(_mm256_sub_epi32(g11, _mm256_mullo_epi32(z1, as1))), y11);
    }
  }
  // out = y * (a_scale * col_scale) + bias
  for (int r = 0; r < MR; r++) {
    const __m256 sa = _mm256_set1_ps(t.a_scale[r]);
    __m256 o0 = _mm256_mul_ps(r ? y10 : y00, _mm256_mul_ps(sa, _mm256_loadu_ps(t.col_scale)));
    __m256 o1 = _mm256_mul_ps(r ? y11 : y01, _mm256_mul_ps(sa, _mm256_loadu_ps(t.col_scale + 8)));
    if (t.bias) {
      o0 = _mm256_add_ps(o0, _mm256_loadu_ps(t.bias));
      o1 = _mm256_add_ps(o1, _mm256_loadu_ps(t.bias + 8));
    }
    float* out = t.out + r * t.ldo;
    if (t.nc == 16) {
      _mm256_storeu_ps(out, o0);
      _mm256_storeu_ps(out + 8, o1);
    } else {
      alignas(32) float tmp[16];
      _mm256_store_ps(tmp, o0);
      _mm256_store_ps(tmp + 8, o1);
      std::memcpy(out, tmp, t.nc * sizeof(float));
    }
  }
}

#undef Q4_STEP16
#undef Q4_STEP32

}  // namespace

// At most 2 rows (its mr in csrc/runtime/dispatch.cc).
void s8q4_f32_gemm__avx2(const Int4Tile& t) {
  if (t.mr >= 2)
    q4_tile<2>(t);
  else
    q4_tile<1>(t);
}

}  // namespace kernels
}  // namespace lowbit
