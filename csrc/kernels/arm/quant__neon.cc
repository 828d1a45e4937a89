// NEON (armv8-a) quantization kernels; contracts in lowbit/kernels.h, oracle in
// ../scalar/quant__scalar.cc.
//
// Tails (the last n % block elements) run one element at a time through the body's own vector
// steps on a vector holding it (lane 0 read back), so a tail computes exactly what the body
// computes, and no kernel shares code with its scalar oracle.
#include <arm_neon.h>

#include <cfloat>
#include <cmath>
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

// ---- one-lane forms of the body's steps, for the tails ----
inline bool nonfinite1(float x) { return vgetq_lane_u32(nonfinite(vdupq_n_f32(x)), 0) != 0; }

inline uint8_t q8_1(float x, float s, float zp, float lo, float hi) {
  const int32x4_t q = q8(vdupq_n_f32(x), vdupq_n_f32(s), vdupq_n_f32(zp), vdupq_n_f32(lo),
                         vdupq_n_f32(hi));
  return static_cast<uint8_t>(vgetq_lane_s32(q, 0));
}

template <typename T>
inline float dequantize1(T q, float s, float zp) {
  const float32x4_t v = vcvtq_f32_s32(vdupq_n_s32(q));
  return vgetq_lane_f32(vmulq_f32(vsubq_f32(v, vdupq_n_f32(zp)), vdupq_n_f32(s)), 0);
}

inline float min1(float a, float x) {
  return vgetq_lane_f32(vminq_f32(vdupq_n_f32(a), vdupq_n_f32(x)), 0);
}
inline float max1(float a, float x) {
  return vgetq_lane_f32(vmaxq_f32(vdupq_n_f32(a), vdupq_n_f32(x)), 0);
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

template <typename T>
void dequantize(const T* q, size_t n, float scale, float zp, float* out) {
  const float32x4_t s = vdupq_n_f32(scale), z = vdupq_n_f32(zp);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float32x4_t lo, hi;
    widen8(load8(q + i), &lo, &hi);
    vst1q_f32(out + i, vmulq_f32(vsubq_f32(lo, z), s));
    vst1q_f32(out + i + 4, vmulq_f32(vsubq_f32(hi, z), s));
  }
  for (; i < n; i++) out[i] = dequantize1(q[i], scale, zp);
}

template <typename T>
void cdequantize(const T* q, size_t n, const float* scale, const float* zp, float* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float32x4_t lo, hi;
    widen8(load8(q + i), &lo, &hi);
    vst1q_f32(out + i, vmulq_f32(vsubq_f32(lo, vld1q_f32(zp + i)), vld1q_f32(scale + i)));
    vst1q_f32(out + i + 4,
              vmulq_f32(vsubq_f32(hi, vld1q_f32(zp + i + 4)), vld1q_f32(scale + i + 4)));
  }
  for (; i < n; i++) out[i] = dequantize1(q[i], scale[i], zp[i]);
}

}  // namespace

bool f32_f32_minmax__neon(const float* x, size_t n, float* mn, float* mx) {
  float32x4_t lo0 = vdupq_n_f32(INFINITY), lo1 = lo0, hi0 = vdupq_n_f32(-INFINITY), hi1 = hi0;
  uint32x4_t bad = vdupq_n_u32(0);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
    lo0 = vminq_f32(lo0, a);
    hi0 = vmaxq_f32(hi0, a);
    lo1 = vminq_f32(lo1, b);
    hi1 = vmaxq_f32(hi1, b);
    bad = vorrq_u32(bad, vorrq_u32(nonfinite(a), nonfinite(b)));
  }
  float lo = vminvq_f32(vminq_f32(lo0, lo1)), hi = vmaxvq_f32(vmaxq_f32(hi0, hi1));
  bool finite = vmaxvq_u32(bad) == 0;
  for (; i < n; i++) {
    finite &= !nonfinite1(x[i]);
    lo = min1(lo, x[i]);
    hi = max1(hi, x[i]);
  }
  *mn = lo;
  *mx = hi;
  return finite;
}

bool f32_f32_cminmax__neon(const float* x, size_t n, float* mn, float* mx) {
  uint32x4_t bad = vdupq_n_u32(0);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t v = vld1q_f32(x + i);
    vst1q_f32(mn + i, vminq_f32(v, vld1q_f32(mn + i)));
    vst1q_f32(mx + i, vmaxq_f32(v, vld1q_f32(mx + i)));
    bad = vorrq_u32(bad, nonfinite(v));
  }
  bool finite = vmaxvq_u32(bad) == 0;
  for (; i < n; i++) {
    finite &= !nonfinite1(x[i]);
    mn[i] = min1(x[i], mn[i]);
    mx[i] = max1(x[i], mx[i]);
  }
  return finite;
}

bool f32_q8_quantize__neon(const float* x, size_t n, float scale, float zp, float qmin,
                           float qmax, uint8_t* out) {
  const float32x4_t s = vdupq_n_f32(scale), z = vdupq_n_f32(zp);
  const float32x4_t lo = vdupq_n_f32(qmin), hi = vdupq_n_f32(qmax);
  uint32x4_t bad = vdupq_n_u32(0);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    int32x4_t q[4];
    for (int j = 0; j < 4; j++) {
      float32x4_t v = vld1q_f32(x + i + 4 * j);
      bad = vorrq_u32(bad, nonfinite(v));
      q[j] = q8(v, s, z, lo, hi);
    }
    store16(out + i, q[0], q[1], q[2], q[3]);
  }
  bool finite = vmaxvq_u32(bad) == 0;
  for (; i < n; i++) {
    finite &= !nonfinite1(x[i]);
    out[i] = q8_1(x[i], scale, zp, qmin, qmax);
  }
  return finite;
}

bool f32_q8_cquantize__neon(const float* x, size_t n, const float* scale, const float* zp,
                            float qmin, float qmax, uint8_t* out) {
  const float32x4_t lo = vdupq_n_f32(qmin), hi = vdupq_n_f32(qmax);
  uint32x4_t bad = vdupq_n_u32(0);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    int32x4_t q[4];
    for (int j = 0; j < 4; j++) {
      float32x4_t v = vld1q_f32(x + i + 4 * j);
      bad = vorrq_u32(bad, nonfinite(v));
      q[j] = q8(v, vld1q_f32(scale + i + 4 * j), vld1q_f32(zp + i + 4 * j), lo, hi);
    }
    store16(out + i, q[0], q[1], q[2], q[3]);
  }
  bool finite = vmaxvq_u32(bad) == 0;
  for (; i < n; i++) {
    finite &= !nonfinite1(x[i]);
    out[i] = q8_1(x[i], scale[i], zp[i], qmin, qmax);
  }
  return finite;
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

// One block (64 values, 32 bytes) per step: low nibbles of both halves, then high nibbles.
void s4_s8_unpack__neon(const uint8_t* in, size_t n, int8_t* out) {
  const uint8x16_t mask = vdupq_n_u8(0x0F);
  const int8x16_t bias = vdupq_n_s8(8);
  for (size_t i = 0; i < n; i += 64, in += 32) {
    const uint8x16_t v0 = vld1q_u8(in), v1 = vld1q_u8(in + 16);
    vst1q_s8(out + i, vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v0, mask)), bias));
    vst1q_s8(out + i + 16, vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v1, mask)), bias));
    vst1q_s8(out + i + 32, vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v0, 4)), bias));
    vst1q_s8(out + i + 48, vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v1, 4)), bias));
  }
}

}  // namespace kernels
}  // namespace lowbit
