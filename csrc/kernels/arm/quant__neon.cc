// NEON (armv8-a) quantization kernels; contracts in lowbit/kernels.h, oracle in
// ../scalar/quant__scalar.cc.
//
// Tails: the last n % block elements are copied into a padded block and run through the body's
// own vector code (padding that cannot change a result: 0 for values and zero points, 1 for
// scales, a value of the tail for min/max), so a tail computes exactly what the body computes and
// no kernel shares code with its scalar oracle.
#include <arm_neon.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

// All-ones lanes where x is NaN or +-Inf (the compare is false for NaN).
inline uint32x4_t nonfinite(float32x4_t x) {
  return vmvnq_u32(vcaleq_f32(x, vdupq_n_f32(FLT_MAX)));
}

// vrndnq rounds half to even; the value is integral and clamped, so the conversion is exact.
inline int32x4_t q8(float32x4_t x, float32x4_t s, float32x4_t zp, float32x4_t lo, float32x4_t hi) {
  float32x4_t v = vaddq_f32(vrndnq_f32(vdivq_f32(x, s)), zp);
  return vcvtq_s32_f32(vminq_f32(vmaxq_f32(v, lo), hi));
}

// 16 int32 codes -> 16 bytes (low 8 bits of each).
inline void store16(uint8_t* out, int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
  int16x8_t ab = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
  int16x8_t cd = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
  vst1q_u8(out, vreinterpretq_u8_s8(vcombine_s8(vmovn_s16(ab), vmovn_s16(cd))));
}

inline void widen8(int8x8_t v, float32x4_t* lo, float32x4_t* hi) {
  int16x8_t w = vmovl_s8(v);
  *lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
  *hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
}
inline void widen8(uint8x8_t v, float32x4_t* lo, float32x4_t* hi) {
  uint16x8_t w = vmovl_u8(v);
  *lo = vcvtq_f32_u32(vmovl_u16(vget_low_u16(w)));
  *hi = vcvtq_f32_u32(vmovl_u16(vget_high_u16(w)));
}
inline int8x8_t load8(const int8_t* q) { return vld1_s8(q); }
inline uint8x8_t load8(const uint8_t* q) { return vld1_u8(q); }

// The first r < N elements of src into a block of N, the rest `pad`.
template <size_t N, typename T>
inline void pad_block(T (&dst)[N], const T* src, size_t r, T pad) {
  std::memcpy(dst, src, r * sizeof(T));
  for (size_t j = r; j < N; j++) dst[j] = pad;
}

template <typename T>
inline void dequantize8(const T* q, float32x4_t s, float32x4_t z, float* out) {
  float32x4_t lo, hi;
  widen8(load8(q), &lo, &hi);
  vst1q_f32(out, vmulq_f32(vsubq_f32(lo, z), s));
  vst1q_f32(out + 4, vmulq_f32(vsubq_f32(hi, z), s));
}

template <typename T>
void dequantize(const T* q, size_t n, float scale, float zp, float* out) {
  const float32x4_t s = vdupq_n_f32(scale), z = vdupq_n_f32(zp);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) dequantize8(q + i, s, z, out + i);
  if (const size_t r = n - i) {
    T bq[8];
    float bo[8];
    pad_block(bq, q + i, r, T(0));
    dequantize8(bq, s, z, bo);
    std::memcpy(out + i, bo, r * sizeof(float));
  }
}

template <typename T>
inline void cdequantize8(const T* q, const float* scale, const float* zp, float* out) {
  float32x4_t lo, hi;
  widen8(load8(q), &lo, &hi);
  vst1q_f32(out, vmulq_f32(vsubq_f32(lo, vld1q_f32(zp)), vld1q_f32(scale)));
  vst1q_f32(out + 4, vmulq_f32(vsubq_f32(hi, vld1q_f32(zp + 4)), vld1q_f32(scale + 4)));
}

template <typename T>
void cdequantize(const T* q, size_t n, const float* scale, const float* zp, float* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) cdequantize8(q + i, scale + i, zp + i, out + i);
  if (const size_t r = n - i) {
    T bq[8];
    float bs[8], bz[8], bo[8];
    pad_block(bq, q + i, r, T(0));
    pad_block(bs, scale + i, r, 1.0f);
    pad_block(bz, zp + i, r, 0.0f);
    cdequantize8(bq, bs, bz, bo);
    std::memcpy(out + i, bo, r * sizeof(float));
  }
}

// 16 codes of x, one scale and zero point (s, z) or one per element (sp, zp non-null); returns
// the lanes where x is not finite.
inline uint32x4_t quantize16(const float* x, float32x4_t s, float32x4_t z, const float* sp,
                             const float* zp, float32x4_t lo, float32x4_t hi, uint8_t* out) {
  int32x4_t q[4];
  uint32x4_t bad = vdupq_n_u32(0);
  for (int j = 0; j < 4; j++) {
    float32x4_t v = vld1q_f32(x + 4 * j);
    bad = vorrq_u32(bad, nonfinite(v));
    q[j] = sp ? q8(v, vld1q_f32(sp + 4 * j), vld1q_f32(zp + 4 * j), lo, hi) : q8(v, s, z, lo, hi);
  }
  store16(out, q[0], q[1], q[2], q[3]);
  return bad;
}

}  // namespace

bool f32_f32_minmax__neon(const float* x, size_t n, float* mn, float* mx) {
  float32x4_t lo0 = vdupq_n_f32(INFINITY), lo1 = lo0, hi0 = vdupq_n_f32(-INFINITY), hi1 = hi0;
  uint32x4_t bad = vdupq_n_u32(0);
  auto block = [&](const float* p) {
    float32x4_t a = vld1q_f32(p), b = vld1q_f32(p + 4);
    lo0 = vminq_f32(lo0, a);
    hi0 = vmaxq_f32(hi0, a);
    lo1 = vminq_f32(lo1, b);
    hi1 = vmaxq_f32(hi1, b);
    bad = vorrq_u32(bad, vorrq_u32(nonfinite(a), nonfinite(b)));
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) block(x + i);
  if (const size_t r = n - i) {
    float bx[8];
    pad_block(bx, x + i, r, x[i]);
    block(bx);
  }
  *mn = vminvq_f32(vminq_f32(lo0, lo1));
  *mx = vmaxvq_f32(vmaxq_f32(hi0, hi1));
  return vmaxvq_u32(bad) == 0;
}

bool f32_f32_cminmax__neon(const float* x, size_t n, float* mn, float* mx) {
  uint32x4_t bad = vdupq_n_u32(0);
  auto block = [&](const float* p, float* pmn, float* pmx) {
    float32x4_t v = vld1q_f32(p);
    vst1q_f32(pmn, vminq_f32(v, vld1q_f32(pmn)));
    vst1q_f32(pmx, vmaxq_f32(v, vld1q_f32(pmx)));
    bad = vorrq_u32(bad, nonfinite(v));
  };
  size_t i = 0;
  for (; i + 4 <= n; i += 4) block(x + i, mn + i, mx + i);
  if (const size_t r = n - i) {
    float bx[4], bmn[4], bmx[4];
    pad_block(bx, x + i, r, 0.0f);
    pad_block(bmn, mn + i, r, 0.0f);
    pad_block(bmx, mx + i, r, 0.0f);
    block(bx, bmn, bmx);
    std::memcpy(mn + i, bmn, r * sizeof(float));
    std::memcpy(mx + i, bmx, r * sizeof(float));
  }
  return vmaxvq_u32(bad) == 0;
}

bool f32_q8_quantize__neon(const float* x, size_t n, float scale, float zp, float qmin,
                           float qmax, uint8_t* out) {
  const float32x4_t s = vdupq_n_f32(scale), z = vdupq_n_f32(zp);
  const float32x4_t lo = vdupq_n_f32(qmin), hi = vdupq_n_f32(qmax);
  uint32x4_t bad = vdupq_n_u32(0);
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    bad = vorrq_u32(bad, quantize16(x + i, s, z, nullptr, nullptr, lo, hi, out + i));
  if (const size_t r = n - i) {
    float bx[16];
    uint8_t bo[16];
    pad_block(bx, x + i, r, 0.0f);
    bad = vorrq_u32(bad, quantize16(bx, s, z, nullptr, nullptr, lo, hi, bo));
    std::memcpy(out + i, bo, r);
  }
  return vmaxvq_u32(bad) == 0;
}

bool f32_q8_cquantize__neon(const float* x, size_t n, const float* scale, const float* zp,
                            float qmin, float qmax, uint8_t* out) {
  const float32x4_t lo = vdupq_n_f32(qmin), hi = vdupq_n_f32(qmax), none = vdupq_n_f32(0.0f);
  uint32x4_t bad = vdupq_n_u32(0);
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    bad = vorrq_u32(bad, quantize16(x + i, none, none, scale + i, zp + i, lo, hi, out + i));
  if (const size_t r = n - i) {
    float bx[16], bs[16], bz[16];
    uint8_t bo[16];
    pad_block(bx, x + i, r, 0.0f);
    pad_block(bs, scale + i, r, 1.0f);
    pad_block(bz, zp + i, r, 0.0f);
    bad = vorrq_u32(bad, quantize16(bx, none, none, bs, bz, lo, hi, bo));
    std::memcpy(out + i, bo, r);
  }
  return vmaxvq_u32(bad) == 0;
}

void qs8_f32_dequantize__neon(const int8_t* q, size_t n, float scale, float zp, float* out) {
  dequantize(q, n, scale, zp, out);
}
void qu8_f32_dequantize__neon(const uint8_t* q, size_t n, float scale, float zp, float* out) {
  dequantize(q, n, scale, zp, out);
}
void qs8_f32_cdequantize__neon(const int8_t* q, size_t n, const float* scale, const float* zp,
                               float* out) {
  cdequantize(q, n, scale, zp, out);
}
void qu8_f32_cdequantize__neon(const uint8_t* q, size_t n, const float* scale, const float* zp,
                               float* out) {
  cdequantize(q, n, scale, zp, out);
}

}  // namespace kernels
}  // namespace lowbit
