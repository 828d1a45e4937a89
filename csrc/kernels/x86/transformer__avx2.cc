// AVX2 transformer kernels (lowbit/kernels.h, "transformer encoders"): 8 lanes across independent
// outputs, or across the 8 stripes of a row's sum, computing the scalar reference's operations in
// its order (no FMA), so the results equal it bit for bit. The AVX-512 set uses them too.
#include <immintrin.h>

#include <cstdint>

#include "lowbit/kernels.h"
#include "../transformer_poly.h"

namespace lowbit {
namespace kernels {
namespace {

using namespace poly;

// The stripe sums' tree: ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)).
float tree_sum(__m256 s) {
  const __m128 a = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  const __m128 b = _mm_add_ps(a, _mm_movehl_ps(a, a));            // (a0 + a2, a1 + a3)
  return _mm_cvtss_f32(_mm_add_ss(b, _mm_shuffle_ps(b, b, 1)));   // b0 + b1
}

__m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpMin)), _mm256_set1_ps(kExpMax));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(kLn2Hi))),
                                 _mm256_mul_ps(n, _mm256_set1_ps(kLn2Lo)));
  __m256 p = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(kExp5), r), _mm256_set1_ps(kExp4));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kExp3));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kExp2));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kExp1));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kExp0));
  p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__m256 abs8(__m256 x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
__m256 neg8(__m256 x) { return _mm256_xor_ps(_mm256_set1_ps(-0.0f), x); }  // -x, as the scalar's

__m256 gelu_erf8(__m256 x) {
  const __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(kSqrtHalf));
  const __m256 az = abs8(z);
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f),
                                 _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_mul_ps(_mm256_set1_ps(0.5f), az)));
  __m256 c = _mm256_set1_ps(kErfcC[9]);
  for (int i = 8; i >= 0; i--) c = _mm256_add_ps(_mm256_mul_ps(c, t), _mm256_set1_ps(kErfcC[i]));
  const __m256 q = _mm256_mul_ps(t, exp8(_mm256_add_ps(neg8(_mm256_mul_ps(az, az)), c)));
  const __m256 pos = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GE_OQ);
  const __m256 f = _mm256_blendv_ps(q, _mm256_sub_ps(_mm256_set1_ps(2.0f), q), pos);
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), f);
}

__m256 gelu_tanh8(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u = _mm256_mul_ps(_mm256_set1_ps(kSqrt2OverPi),
                                 _mm256_add_ps(x, _mm256_mul_ps(_mm256_set1_ps(kGeluCubic), x3)));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(neg8(_mm256_add_ps(u, u)))));
}

}  // namespace

void f32_f32_layernorm__avx2(const float* x, const float* r, size_t n, const float* gamma,
                             const float* beta, float eps, float* y) {
  const size_t n8 = n - n % 8;
  auto v8 = [&](size_t i) {
    const __m256 a = _mm256_loadu_ps(x + i);
    return r ? _mm256_add_ps(a, _mm256_loadu_ps(r + i)) : a;
  };
  auto v1 = [&](size_t i) { return r ? x[i] + r[i] : x[i]; };
  __m256 s = _mm256_setzero_ps();
  for (size_t i = 0; i < n8; i += 8) s = _mm256_add_ps(s, v8(i));
  float t = tree_sum(s);
  for (size_t i = n8; i < n; i++) t += v1(i);
  const float mean = t / static_cast<float>(n);
  const __m256 m8 = _mm256_set1_ps(mean);
  s = _mm256_setzero_ps();
  for (size_t i = 0; i < n8; i += 8) {
    const __m256 d = _mm256_sub_ps(v8(i), m8);
    s = _mm256_add_ps(s, _mm256_mul_ps(d, d));
  }
  t = tree_sum(s);
  for (size_t i = n8; i < n; i++) {
    const float d = v1(i) - mean;
    t += d * d;
  }
  const float inv = 1.0f / __builtin_sqrtf(t / static_cast<float>(n) + eps);
  const __m256 i8 = _mm256_set1_ps(inv);
  for (size_t i = 0; i < n8; i += 8) {
    const __m256 d = _mm256_mul_ps(_mm256_sub_ps(v8(i), m8), i8);
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_mul_ps(d, _mm256_loadu_ps(gamma + i)),
                                          _mm256_loadu_ps(beta + i)));
  }
  for (size_t i = n8; i < n; i++) y[i] = (v1(i) - mean) * inv * gamma[i] + beta[i];
}

void f32_f32_gelu__avx2(const float* x, size_t n, int form, float* y) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(y + i, form ? gelu_tanh8(v) : gelu_erf8(v));
  }
  if (i < n) {  // the tail through a zero-padded vector
    float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t j = i; j < n; j++) buf[j - i] = x[j];
    const __m256 v = _mm256_loadu_ps(buf);
    _mm256_storeu_ps(buf, form ? gelu_tanh8(v) : gelu_erf8(v));
    for (size_t j = i; j < n; j++) y[j] = buf[j - i];
  }
}

void f32_f32_softmax__avx2(float* x, size_t n) {
  if (n == 0) return;
  const size_t n8 = n - n % 8;
  float m = x[0];
  if (n8) {
    __m256 mv = _mm256_loadu_ps(x);
    for (size_t i = 8; i < n8; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, mv);
    for (float l : lanes) m = m > l ? m : l;
  }
  for (size_t i = n8; i < n; i++) m = m > x[i] ? m : x[i];
  const __m256 m8 = _mm256_set1_ps(m);
  __m256 s = _mm256_setzero_ps();
  for (size_t i = 0; i < n8; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8));
    _mm256_storeu_ps(x + i, e);
    s = _mm256_add_ps(s, e);
  }
  float t = tree_sum(s);
  if (n8 < n) {
    float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t j = n8; j < n; j++) buf[j - n8] = x[j] - m;
    _mm256_storeu_ps(buf, exp8(_mm256_loadu_ps(buf)));
    for (size_t j = n8; j < n; j++) {
      x[j] = buf[j - n8];
      t += x[j];
    }
  }
  const __m256 t8 = _mm256_set1_ps(t);
  for (size_t i = 0; i < n8; i += 8) _mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), t8));
  for (size_t i = n8; i < n; i++) x[i] = x[i] / t;
}

void f32_f32_vecmat__avx2(const float* p, size_t n, const float* m, size_t ldm, size_t cols,
                          float* out) {
  size_t c = 0;
  for (; c + 32 <= cols; c += 32) {  // four independent accumulators per step of j
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t j = 0; j < n; j++) {
      const __m256 pj = _mm256_broadcast_ss(p + j);
      const float* row = m + j * ldm + c;
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(pj, _mm256_loadu_ps(row)));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(pj, _mm256_loadu_ps(row + 8)));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(pj, _mm256_loadu_ps(row + 16)));
      a3 = _mm256_add_ps(a3, _mm256_mul_ps(pj, _mm256_loadu_ps(row + 24)));
    }
    _mm256_storeu_ps(out + c, a0);
    _mm256_storeu_ps(out + c + 8, a1);
    _mm256_storeu_ps(out + c + 16, a2);
    _mm256_storeu_ps(out + c + 24, a3);
  }
  for (; c + 8 <= cols; c += 8) {
    __m256 a = _mm256_setzero_ps();
    for (size_t j = 0; j < n; j++)
      a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_broadcast_ss(p + j), _mm256_loadu_ps(m + j * ldm + c)));
    _mm256_storeu_ps(out + c, a);
  }
  for (; c < cols; c++) {
    float acc = 0.0f;
    for (size_t j = 0; j < n; j++) acc += p[j] * m[j * ldm + c];
    out[c] = acc;
  }
}

void f32_f32_hadamard__avx2(float* x, size_t n, const float* signs) {
  const __m256 scale = _mm256_set1_ps(kInvSqrt128);
  for (size_t b = 0; b < n; b += kHadamardBlock) {
    float* blk = x + b;
    for (size_t half = 0; half < 128; half += 64) {  // stages h = 1 .. 32, 8 vectors in registers
      __m256 v[8];
      for (int j = 0; j < 8; j++) {
        // signs, then stages h = 1, 2, 4 inside each vector: (u + w, u - w), w the partner lane
        __m256 a = _mm256_mul_ps(_mm256_loadu_ps(blk + half + 8 * j),
                                 _mm256_loadu_ps(signs + b + half + 8 * j));
        __m256 t = _mm256_permute_ps(a, 0xB1);  // lanes 1 0 3 2 ...
        a = _mm256_blend_ps(_mm256_add_ps(a, t), _mm256_sub_ps(t, a), 0xAA);
        t = _mm256_permute_ps(a, 0x4E);         // lanes 2 3 0 1 ...
        a = _mm256_blend_ps(_mm256_add_ps(a, t), _mm256_sub_ps(t, a), 0xCC);
        t = _mm256_permute2f128_ps(a, a, 1);    // halves swapped
        v[j] = _mm256_blend_ps(_mm256_add_ps(a, t), _mm256_sub_ps(t, a), 0xF0);
      }
      for (int h = 1; h < 8; h *= 2)  // stages h = 8, 16, 32: whole vectors
        for (int j = 0; j < 8; j++)
          if ((j & h) == 0) {
            const __m256 u = v[j], w = v[j + h];
            v[j] = _mm256_add_ps(u, w);
            v[j + h] = _mm256_sub_ps(u, w);
          }
      for (int j = 0; j < 8; j++) _mm256_storeu_ps(blk + half + 8 * j, v[j]);
    }
    for (int j = 0; j < 8; j++) {  // stage h = 64 across the halves, then the scale
      const __m256 u = _mm256_loadu_ps(blk + 8 * j), w = _mm256_loadu_ps(blk + 64 + 8 * j);
      _mm256_storeu_ps(blk + 8 * j, _mm256_mul_ps(_mm256_add_ps(u, w), scale));
      _mm256_storeu_ps(blk + 64 + 8 * j, _mm256_mul_ps(_mm256_sub_ps(u, w), scale));
    }
  }
}

}  // namespace kernels
}  // namespace lowbit
