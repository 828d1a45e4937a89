// Scalar transformer kernels (lowbit/kernels.h, "transformer encoders"): the fallback on every
// CPU and the oracle of the SIMD versions (../x86/transformer__avx2.cc, ../arm/transformer__neon.cc),
// written as the contract states it, one element at a time.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "lowbit/kernels.h"
#include "../transformer_poly.h"

namespace lowbit {
namespace kernels {
namespace {

using namespace poly;

// The contract's stripe_sum of f(i) for i < n.
template <typename F>
float stripe_sum(size_t n, F f) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const size_t n8 = n - n % 8;
  for (size_t i = 0; i < n8; i++) s[i % 8] += f(i);
  float t = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
  for (size_t i = n8; i < n; i++) t += f(i);
  return t;
}

float exp_poly(float x) {
  x = std::fmin(std::fmax(x, kExpMin), kExpMax);
  const float n = std::nearbyint(x * kLog2e);
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = kExp5 * r + kExp4;
  p = p * r + kExp3;
  p = p * r + kExp2;
  p = p * r + kExp1;
  p = p * r + kExp0;
  p = (p * (r * r) + r) + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

// erfc(z) for z >= 0 (the contract's q).
float erfc_poly(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float c = kErfcC[9];
  for (int i = 8; i >= 0; i--) c = c * t + kErfcC[i];
  return t * exp_poly(-(z * z) + c);
}

float gelu_erf(float x) {
  const float z = x * kSqrtHalf;
  const float q = erfc_poly(std::fabs(z));
  // 1 + erf(z) = 2 - erfc(z) for z >= 0, erfc(-z) for z < 0
  return 0.5f * x * (z >= 0.0f ? 2.0f - q : q);
}

float gelu_tanh(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * (x * x * x));
  return x / (1.0f + exp_poly(-(u + u)));
}

}  // namespace

void f32_f32_layernorm__scalar(const float* x, const float* r, size_t n, const float* gamma,
                               const float* beta, float eps, float* y) {
  auto v = [&](size_t i) { return r ? x[i] + r[i] : x[i]; };
  const float mean = stripe_sum(n, v) / static_cast<float>(n);
  const float var = stripe_sum(n, [&](size_t i) {
                      const float d = v(i) - mean;
                      return d * d;
                    }) / static_cast<float>(n);
  const float inv = 1.0f / std::sqrt(var + eps);
  for (size_t i = 0; i < n; i++) y[i] = (v(i) - mean) * inv * gamma[i] + beta[i];
}

void f32_f32_gelu__scalar(const float* x, size_t n, int form, float* y) {
  for (size_t i = 0; i < n; i++) y[i] = form ? gelu_tanh(x[i]) : gelu_erf(x[i]);
}

void f32_f32_softmax__scalar(float* x, size_t n) {
  if (n == 0) return;
  float m = x[0];
  for (size_t i = 1; i < n; i++) m = std::fmax(m, x[i]);
  for (size_t i = 0; i < n; i++) x[i] = exp_poly(x[i] - m);
  const float s = stripe_sum(n, [&](size_t i) { return x[i]; });
  for (size_t i = 0; i < n; i++) x[i] = x[i] / s;
}

void f32_f32_vecmat__scalar(const float* p, size_t n, const float* m, size_t ldm, size_t cols,
                            float* out) {
  for (size_t c = 0; c < cols; c++) {
    float acc = 0.0f;
    for (size_t j = 0; j < n; j++) acc += p[j] * m[j * ldm + c];
    out[c] = acc;
  }
}

void f32_f32_hadamard__scalar(float* x, size_t n, const float* signs) {
  for (size_t i = 0; i < n; i++) x[i] = x[i] * signs[i];
  for (size_t b = 0; b < n; b += kHadamardBlock)
    for (size_t h = 1; h < kHadamardBlock; h *= 2)
      for (size_t i = b; i < b + kHadamardBlock; i++)
        if ((i & h) == 0) {
          const float u = x[i], v = x[i + h];
          x[i] = u + v;
          x[i + h] = u - v;
        }
  for (size_t i = 0; i < n; i++) x[i] = x[i] * kInvSqrt128;
}

}  // namespace kernels
}  // namespace lowbit
