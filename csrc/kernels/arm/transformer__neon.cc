// NEON transformer kernels (lowbit/kernels.h, "transformer encoders"): 4 lanes across independent
// outputs, and a row's 8 stripes held in two vectors (stripes 0-3 and 4-7), computing the scalar
// reference's operations in its order (no fused multiply-add), so the results equal it bit for bit.
#include <arm_neon.h>

#include <cstdint>

#include "lowbit/kernels.h"
#include "../transformer_poly.h"

namespace lowbit {
namespace kernels {
namespace {

using namespace poly;

// The stripe sums' tree: ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)), lo = s0..s3.
float tree_sum(float32x4_t lo, float32x4_t hi) {
  const float32x4_t a = vaddq_f32(lo, hi);                  // s0+s4, s1+s5, s2+s6, s3+s7
  const float32x4_t b = vaddq_f32(a, vextq_f32(a, a, 2));   // a0 + a2, a1 + a3, ...
  return vgetq_lane_f32(b, 0) + vgetq_lane_f32(b, 1);
}

float32x4_t dup(float v) { return vdupq_n_f32(v); }
float32x4_t mul_add(float32x4_t a, float32x4_t b, float32x4_t c) {  // a * b + c, two roundings
  return vaddq_f32(vmulq_f32(a, b), c);
}

float32x4_t exp4(float32x4_t x) {
  x = vminq_f32(vmaxq_f32(x, dup(kExpMin)), dup(kExpMax));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, dup(kLog2e)));
  const float32x4_t r = vsubq_f32(vsubq_f32(x, vmulq_f32(n, dup(kLn2Hi))), vmulq_f32(n, dup(kLn2Lo)));
  float32x4_t p = mul_add(dup(kExp5), r, dup(kExp4));
  p = mul_add(p, r, dup(kExp3));
  p = mul_add(p, r, dup(kExp2));
  p = mul_add(p, r, dup(kExp1));
  p = mul_add(p, r, dup(kExp0));
  p = vaddq_f32(vaddq_f32(vmulq_f32(p, vmulq_f32(r, r)), r), dup(1.0f));
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

float32x4_t gelu_erf4(float32x4_t x) {
  const float32x4_t z = vmulq_f32(x, dup(kSqrtHalf));
  const float32x4_t az = vabsq_f32(z);
  const float32x4_t t = vdivq_f32(dup(1.0f), vaddq_f32(dup(1.0f), vmulq_f32(dup(0.5f), az)));
  float32x4_t c = dup(kErfcC[9]);
  for (int i = 8; i >= 0; i--) c = mul_add(c, t, dup(kErfcC[i]));
  const float32x4_t q = vmulq_f32(t, exp4(vaddq_f32(vnegq_f32(vmulq_f32(az, az)), c)));
  const uint32x4_t pos = vcgeq_f32(z, dup(0.0f));
  const float32x4_t f = vbslq_f32(pos, vsubq_f32(dup(2.0f), q), q);
  return vmulq_f32(vmulq_f32(dup(0.5f), x), f);
}

float32x4_t gelu_tanh4(float32x4_t x) {
  const float32x4_t x3 = vmulq_f32(vmulq_f32(x, x), x);
  const float32x4_t u = vmulq_f32(dup(kSqrt2OverPi), vaddq_f32(x, vmulq_f32(dup(kGeluCubic), x3)));
  return vdivq_f32(x, vaddq_f32(dup(1.0f), exp4(vnegq_f32(vaddq_f32(u, u)))));
}

template <typename F>
void map4(const float* x, size_t n, float* y, F f) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, f(vld1q_f32(x + i)));
  if (i < n) {  // the tail through a zero-padded vector
    float buf[4] = {0, 0, 0, 0};
    for (size_t j = i; j < n; j++) buf[j - i] = x[j];
    vst1q_f32(buf, f(vld1q_f32(buf)));
    for (size_t j = i; j < n; j++) y[j] = buf[j - i];
  }
}

}  // namespace

void f32_f32_layernorm__neon(const float* x, const float* r, size_t n, const float* gamma,
                             const float* beta, float eps, float* y) {
  const size_t n8 = n - n % 8;
  auto v4 = [&](size_t i) {
    const float32x4_t a = vld1q_f32(x + i);
    return r ? vaddq_f32(a, vld1q_f32(r + i)) : a;
  };
  auto v1 = [&](size_t i) { return r ? x[i] + r[i] : x[i]; };
  float32x4_t lo = dup(0.0f), hi = dup(0.0f);
  for (size_t i = 0; i < n8; i += 8) {
    lo = vaddq_f32(lo, v4(i));
    hi = vaddq_f32(hi, v4(i + 4));
  }
  float t = tree_sum(lo, hi);
  for (size_t i = n8; i < n; i++) t += v1(i);
  const float mean = t / static_cast<float>(n);
  const float32x4_t m4 = dup(mean);
  lo = hi = dup(0.0f);
  for (size_t i = 0; i < n8; i += 8) {
    const float32x4_t d0 = vsubq_f32(v4(i), m4), d1 = vsubq_f32(v4(i + 4), m4);
    lo = vaddq_f32(lo, vmulq_f32(d0, d0));
    hi = vaddq_f32(hi, vmulq_f32(d1, d1));
  }
  t = tree_sum(lo, hi);
  for (size_t i = n8; i < n; i++) {
    const float d = v1(i) - mean;
    t += d * d;
  }
  const float inv = 1.0f / __builtin_sqrtf(t / static_cast<float>(n) + eps);
  const float32x4_t i4 = dup(inv);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t d = vmulq_f32(vsubq_f32(v4(i), m4), i4);
    vst1q_f32(y + i, vaddq_f32(vmulq_f32(d, vld1q_f32(gamma + i)), vld1q_f32(beta + i)));
  }
  for (; i < n; i++) y[i] = (v1(i) - mean) * inv * gamma[i] + beta[i];
}

void f32_f32_gelu__neon(const float* x, size_t n, int form, float* y) {
  if (form)
    map4(x, n, y, gelu_tanh4);
  else
    map4(x, n, y, gelu_erf4);
}

void f32_f32_softmax__neon(float* x, size_t n) {
  if (n == 0) return;
  float m = x[0];
  for (size_t i = 1; i < n; i++) m = m > x[i] ? m : x[i];
  const float32x4_t m4 = dup(m);
  map4(x, n, x, [&](float32x4_t v) { return exp4(vsubq_f32(v, m4)); });
  const size_t n8 = n - n % 8;
  float32x4_t lo = dup(0.0f), hi = dup(0.0f);
  for (size_t i = 0; i < n8; i += 8) {
    lo = vaddq_f32(lo, vld1q_f32(x + i));
    hi = vaddq_f32(hi, vld1q_f32(x + i + 4));
  }
  float t = tree_sum(lo, hi);
  for (size_t i = n8; i < n; i++) t += x[i];
  const float32x4_t t4 = dup(t);
  map4(x, n, x, [&](float32x4_t v) { return vdivq_f32(v, t4); });
}

void f32_f32_vecmat__neon(const float* p, size_t n, const float* m, size_t ldm, size_t cols,
                          float* out) {
  size_t c = 0;
  for (; c + 16 <= cols; c += 16) {  // four independent accumulators per step of j
    float32x4_t a0 = dup(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (size_t j = 0; j < n; j++) {
      const float32x4_t pj = vld1q_dup_f32(p + j);
      const float* row = m + j * ldm + c;
      a0 = vaddq_f32(a0, vmulq_f32(pj, vld1q_f32(row)));
      a1 = vaddq_f32(a1, vmulq_f32(pj, vld1q_f32(row + 4)));
      a2 = vaddq_f32(a2, vmulq_f32(pj, vld1q_f32(row + 8)));
      a3 = vaddq_f32(a3, vmulq_f32(pj, vld1q_f32(row + 12)));
    }
    vst1q_f32(out + c, a0);
    vst1q_f32(out + c + 4, a1);
    vst1q_f32(out + c + 8, a2);
    vst1q_f32(out + c + 12, a3);
  }
  for (; c + 4 <= cols; c += 4) {
    float32x4_t a = dup(0.0f);
    for (size_t j = 0; j < n; j++) a = vaddq_f32(a, vmulq_f32(vld1q_dup_f32(p + j), vld1q_f32(m + j * ldm + c)));
    vst1q_f32(out + c, a);
  }
  for (; c < cols; c++) {
    float acc = 0.0f;
    for (size_t j = 0; j < n; j++) acc += p[j] * m[j * ldm + c];
    out[c] = acc;
  }
}

void f32_f32_hadamard__neon(float* x, size_t n, const float* signs) {
  const uint32x4_t odd = {0, ~0u, 0, ~0u}, high = {0, 0, ~0u, ~0u};
  const float32x4_t scale = dup(kInvSqrt128);
  // (u, w) = (u + w, u - w) for whole vectors, in place
  auto bfly = [](float32x4_t& u, float32x4_t& w) {
    const float32x4_t a = u;
    u = vaddq_f32(a, w);
    w = vsubq_f32(a, w);
  };
  auto bfly_mem = [](float* u, float* w, float32x4_t s, bool scaled) {
    const float32x4_t a = vld1q_f32(u), c = vld1q_f32(w);
    vst1q_f32(u, scaled ? vmulq_f32(vaddq_f32(a, c), s) : vaddq_f32(a, c));
    vst1q_f32(w, scaled ? vmulq_f32(vsubq_f32(a, c), s) : vsubq_f32(a, c));
  };
  for (size_t b = 0; b < n; b += kHadamardBlock) {
    float* blk = x + b;
#pragma GCC unroll 1  // one group of 8 vectors at a time (unrolled, GCC 12 spills them)
    for (size_t q = 0; q < 128; q += 32) {  // stages h = 1 .. 16 on 8 vectors in registers
      float32x4_t v[8];
      for (int j = 0; j < 8; j++) {
        // signs, then stages h = 1, 2 inside each vector: (u + w, u - w), w the partner lane
        float32x4_t a = vmulq_f32(vld1q_f32(blk + q + 4 * j), vld1q_f32(signs + b + q + 4 * j));
        float32x4_t t = vrev64q_f32(a);  // lanes 1 0 3 2
        a = vbslq_f32(odd, vsubq_f32(t, a), vaddq_f32(a, t));
        t = vextq_f32(a, a, 2);          // lanes 2 3 0 1
        v[j] = vbslq_f32(high, vsubq_f32(t, a), vaddq_f32(a, t));
      }
      bfly(v[0], v[1]), bfly(v[2], v[3]), bfly(v[4], v[5]), bfly(v[6], v[7]);  // h = 4
      bfly(v[0], v[2]), bfly(v[1], v[3]), bfly(v[4], v[6]), bfly(v[5], v[7]);  // h = 8
      bfly(v[0], v[4]), bfly(v[1], v[5]), bfly(v[2], v[6]), bfly(v[3], v[7]);  // h = 16
      for (int j = 0; j < 8; j++) vst1q_f32(blk + q + 4 * j, v[j]);
    }
    for (size_t q = 0; q < 128; q += 64)  // h = 32
#pragma GCC unroll 2
      for (size_t j = 0; j < 32; j += 4) bfly_mem(blk + q + j, blk + q + 32 + j, scale, false);
#pragma GCC unroll 2
    for (size_t j = 0; j < 64; j += 4) bfly_mem(blk + j, blk + 64 + j, scale, true);  // h = 64, scaled
  }
}

}  // namespace kernels
}  // namespace lowbit
