// Scalar references for the quantization kernels (contracts in lowbit/kernels.h).
#include "kernels/scalar/quant_ref.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {

bool f32_f32_minmax__scalar(const float* x, size_t n, float* mn, float* mx) {
  float lo = INFINITY, hi = -INFINITY;
  bool finite = true;
  for (size_t i = 0; i < n; i++) {
    finite &= ref::is_finite(x[i]);
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  *mn = lo;
  *mx = hi;
  return finite;
}

bool f32_f32_cminmax__scalar(const float* x, size_t n, float* mn, float* mx) {
  bool finite = true;
  for (size_t i = 0; i < n; i++) {
    finite &= ref::is_finite(x[i]);
    mn[i] = x[i] < mn[i] ? x[i] : mn[i];
    mx[i] = x[i] > mx[i] ? x[i] : mx[i];
  }
  return finite;
}

bool f32_q8_quantize__scalar(const float* x, size_t n, float scale, float zp, float qmin,
                             float qmax, uint8_t* out) {
  bool finite = true;
  for (size_t i = 0; i < n; i++) {
    finite &= ref::is_finite(x[i]);
    out[i] = ref::quantize1(x[i], scale, zp, qmin, qmax);
  }
  return finite;
}

bool f32_q8_cquantize__scalar(const float* x, size_t n, const float* scale, const float* zp,
                              float qmin, float qmax, uint8_t* out) {
  bool finite = true;
  for (size_t i = 0; i < n; i++) {
    finite &= ref::is_finite(x[i]);
    out[i] = ref::quantize1(x[i], scale[i], zp[i], qmin, qmax);
  }
  return finite;
}

void qs8_f32_dequantize__scalar(const int8_t* q, size_t n, float scale, float zp, float* out) {
  for (size_t i = 0; i < n; i++) out[i] = ref::dequantize1(q[i], scale, zp);
}

void qu8_f32_dequantize__scalar(const uint8_t* q, size_t n, float scale, float zp, float* out) {
  for (size_t i = 0; i < n; i++) out[i] = ref::dequantize1(q[i], scale, zp);
}

void qs8_f32_cdequantize__scalar(const int8_t* q, size_t n, const float* scale, const float* zp,
                                 float* out) {
  for (size_t i = 0; i < n; i++) out[i] = ref::dequantize1(q[i], scale[i], zp[i]);
}

void qu8_f32_cdequantize__scalar(const uint8_t* q, size_t n, const float* scale, const float* zp,
                                 float* out) {
  for (size_t i = 0; i < n; i++) out[i] = ref::dequantize1(q[i], scale[i], zp[i]);
}

void s4_s8_unpack__scalar(const uint8_t* in, size_t n, int8_t* out) {
  for (size_t i = 0; i < n; i++) {
    const size_t block = i / 64, j = i % 64;
    const uint8_t byte = in[block * 32 + j % 32];
    const int nibble = j < 32 ? byte & 0x0F : byte >> 4;
    out[i] = static_cast<int8_t>(nibble - 8);
  }
}

}  // namespace kernels
}  // namespace lowbit
