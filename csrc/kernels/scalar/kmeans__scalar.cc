// Scalar references for the k-means kernels (contracts in lowbit/kernels.h): the fallback on
// CPUs without SIMD and the oracle every SIMD twin is tested against, bit for bit.
#include <cmath>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

// The 1-D code of one value: the lookup table's lower bound, then single steps.
inline uint32_t code1d(float x, const Kmeans1dLut& L) {
  float v = (x - L.lo) * L.inv_w;
  v = v > 0.0f ? v : 0.0f;
  const float top = static_cast<float>(L.nbins - 1);
  v = v < top ? v : top;
  const uint32_t e = L.lut[static_cast<uint32_t>(v)];
  uint32_t c = e & 0x7FFFFFFFu;
  if (e >> 31)
    while (c < L.nt && x >= L.t[c]) c++;
  return c;
}

}  // namespace

void f32_u32_kmeans_assign__scalar(const float* x, size_t n, size_t d, const float* c,
                                   const float* hn, size_t k, uint32_t* idx) {
  for (size_t i = 0; i < n; i++) {
    const float* xi = x + i * d;
    float best = INFINITY;
    uint32_t bj = 0;
    for (size_t j = 0; j < k; j++) {
      const float* cj = c + j * d;
      float s = hn[j];
      for (size_t t = 0; t < d; t++) s = std::fma(-xi[t], cj[t], s);
      if (s < best) {
        best = s;
        bj = static_cast<uint32_t>(j);
      }
    }
    idx[i] = bj;
  }
}

void f32_code_kmeans1d_assign__scalar(const float* x, size_t n, const Kmeans1dLut* lut, int bits,
                                      void* out) {
  const Kmeans1dLut& L = *lut;
  if (bits == 4) {
    uint8_t* o = static_cast<uint8_t*>(out);
    size_t i = 0;
    for (; i + 2 <= n; i += 2)
      o[i / 2] = static_cast<uint8_t>(code1d(x[i], L) | (code1d(x[i + 1], L) << 4));
    if (i < n) o[i / 2] = static_cast<uint8_t>(code1d(x[i], L));
  } else if (bits == 8) {
    uint8_t* o = static_cast<uint8_t*>(out);
    for (size_t i = 0; i < n; i++) o[i] = static_cast<uint8_t>(code1d(x[i], L));
  } else {
    uint16_t* o = static_cast<uint16_t*>(out);
    for (size_t i = 0; i < n; i++) o[i] = static_cast<uint16_t>(code1d(x[i], L));
  }
}

}  // namespace kernels
}  // namespace lowbit
