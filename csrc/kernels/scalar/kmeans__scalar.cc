// Scalar references for the k-means codebook kernels (contracts in lowbit/kernels.h): the
// fallback on CPUs without SIMD and the oracle every SIMD twin is tested against, bit for bit.
#include <cmath>
#include <cstring>

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

void f32_kmeans_assign__scalar(const float* x, size_t n, size_t d, const float* c, const float* hn,
                               size_t k, uint32_t* idx) {
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

void f32_kmeans1d_assign__scalar(const float* x, size_t n, const Kmeans1dLut* lut, int bits,
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

void u4_f32_lookup__scalar(const uint8_t* codes, size_t n, const float* table, size_t d,
                           float* out, int) {
  if (d == 1) {
    for (size_t i = 0; i < n; i++) out[i] = table[(codes[i / 2] >> ((i & 1) * 4)) & 15u];
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const unsigned code = (codes[i / 2] >> ((i & 1) * 4)) & 15u;
    std::memcpy(out + i * d, table + code * d, d * sizeof(float));
  }
}

void u8_f32_lookup__scalar(const uint8_t* codes, size_t n, const float* table, size_t d,
                           float* out, int) {
  if (d == 1) {
    for (size_t i = 0; i < n; i++) out[i] = table[codes[i]];
    return;
  }
  for (size_t i = 0; i < n; i++) std::memcpy(out + i * d, table + codes[i] * d, d * sizeof(float));
}

void u16_f32_lookup__scalar(const uint16_t* codes, size_t n, const float* table, size_t d,
                            float* out, int) {
  if (d == 1) {
    for (size_t i = 0; i < n; i++) out[i] = table[codes[i]];
    return;
  }
  for (size_t i = 0; i < n; i++) std::memcpy(out + i * d, table + codes[i] * d, d * sizeof(float));
}

void gemm_s8cb4s64__scalar(size_t mr, size_t nr, size_t kp, const int8_t* x, size_t ldx,
                           const uint8_t* w, size_t ldw, const int8_t* table, int64_t* y,
                           size_t ldy) {
  for (size_t r = 0; r < mr; r++)
    for (size_t c = 0; c < nr; c++) {
      const int8_t* xr = x + r * ldx;
      const uint8_t* wc = w + c * ldw;
      int64_t acc = 0;
      for (size_t u = 0; u < kp / 64; u++)
        for (size_t j = 0; j < 32; j++) {
          const uint8_t b = wc[u * 32 + j];
          acc += int32_t(xr[u * 64 + j]) * table[b & 15] + int32_t(xr[u * 64 + 32 + j]) * table[b >> 4];
        }
      y[r * ldy + c] = acc;
    }
}

void gemm_s16s16s64__scalar(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                            const int16_t* w, size_t ldw, int64_t* y, size_t ldy) {
  for (size_t r = 0; r < mr; r++)
    for (size_t c = 0; c < nr; c++) {
      const int16_t* xr = x + r * ldx;
      const int16_t* wc = w + c * ldw;
      int64_t acc = 0;
      for (size_t i = 0; i < kp; i++) acc += static_cast<int64_t>(xr[i]) * wc[i];
      y[r * ldy + c] = acc;
    }
}

void gemm_s16cb4s64__scalar(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                            const uint8_t* w, size_t ldw, const int16_t* table, int64_t* y,
                            size_t ldy) {
  for (size_t r = 0; r < mr; r++)
    for (size_t c = 0; c < nr; c++) {
      const int16_t* xr = x + r * ldx;
      const uint8_t* wc = w + c * ldw;
      int64_t acc = 0;
      for (size_t u = 0; u < kp / 64; u++)
        for (size_t j = 0; j < 32; j++) {
          const uint8_t b = wc[u * 32 + j];
          // Activations j and 32 + j of the unit, where the swapped layout keeps them.
          const size_t pj = (j >= 8 && j < 16) ? j + 8 : (j >= 16 && j < 24) ? j - 8 : j;
          acc += int64_t(xr[u * 64 + pj]) * table[b & 15] + int64_t(xr[u * 64 + 32 + pj]) * table[b >> 4];
        }
      y[r * ldy + c] = acc;
    }
}

}  // namespace kernels
}  // namespace lowbit
