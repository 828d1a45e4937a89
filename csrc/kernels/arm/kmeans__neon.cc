// NEON (armv8-a) k-means kernels (the nearest-centroid assignments); contracts in
// lowbit/kernels.h, oracle in ../scalar/kmeans__scalar.cc (tails are handed to it, so they match
// by construction).
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/tiles.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
namespace {

// ---- assignment: 16 points a block, lanes = points (the reference's sequence per lane) -------
constexpr size_t kBlock = 16;

template <int D>  // D > 0: dimension known at compile time; 0: any d
void assign_block(const float* xs, size_t d, const float* c, const float* hn, size_t k,
                  uint32_t* idx) {
  constexpr int G = 4;  // groups of 4 points
  const size_t dd = D > 0 ? static_cast<size_t>(D) : d;
  float32x4_t b[G];
  uint32x4_t i[G];
  for (int g = 0; g < G; g++) {
    b[g] = vdupq_n_f32(INFINITY);
    i[g] = vdupq_n_u32(0);
  }
  uint32x4_t jv = vdupq_n_u32(0);
  const uint32x4_t one = vdupq_n_u32(1);
  for (size_t j = 0; j < k; j++) {
    const float* cj = c + j * dd;
    float32x4_t s[G];
    for (int g = 0; g < G; g++) s[g] = vdupq_n_f32(hn[j]);
    for (size_t t = 0; t < dd; t++) {
      const float32x4_t cb = vdupq_n_f32(cj[t]);
      const float* xt = xs + t * kBlock;
      for (int g = 0; g < G; g++) s[g] = vfmsq_f32(s[g], vld1q_f32(xt + 4 * g), cb);  // fused
    }
    for (int g = 0; g < G; g++) {
      const uint32x4_t m = vcltq_f32(s[g], b[g]);
      b[g] = vbslq_f32(m, s[g], b[g]);
      i[g] = vbslq_u32(m, jv, i[g]);
    }
    jv = vaddq_u32(jv, one);
  }
  for (int g = 0; g < G; g++) vst1q_u32(idx + 4 * g, i[g]);
}

}  // namespace

void f32_u32_kmeans_assign__neon(const float* x, size_t n, size_t d, const float* c,
                                 const float* hn, size_t k, uint32_t* idx) {
  assign_in_blocks<kBlock>(x, n, d, idx, [&](const float* xs, uint32_t* out) {
    switch (d) {
      case 2: assign_block<2>(xs, d, c, hn, k, out); break;
      case 4: assign_block<4>(xs, d, c, hn, k, out); break;
      case 8: assign_block<8>(xs, d, c, hn, k, out); break;
      default: assign_block<0>(xs, d, c, hn, k, out);
    }
  });
}

void f32_code_kmeans1d_assign__neon(const float* x, size_t n, const Kmeans1dLut* lut, int bits,
                                    void* out) {
  // NEON has no gathers: the grid bin is computed 4 lanes at a time (the reference's selects),
  // the table lookups and steps per lane.
  const float32x4_t lo = vdupq_n_f32(lut->lo), inv = vdupq_n_f32(lut->inv_w);
  const float32x4_t zero = vdupq_n_f32(0.0f), top = vdupq_n_f32(static_cast<float>(lut->nbins - 1));
  const uint32_t nt = lut->nt;
  uint8_t* o8 = static_cast<uint8_t*>(out);
  uint16_t* o16 = static_cast<uint16_t*>(out);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t xv = vld1q_f32(x + i);
    float32x4_t v = vmulq_f32(vsubq_f32(xv, lo), inv);
    v = vbslq_f32(vcgtq_f32(v, zero), v, zero);
    v = vbslq_f32(vcltq_f32(v, top), v, top);
    uint32_t g[4], code[4];
    vst1q_u32(g, vcvtq_u32_f32(v));
    for (int l = 0; l < 4; l++) {
      const uint32_t e = lut->lut[g[l]];
      uint32_t cc = e & 0x7FFFFFFFu;
      if (e >> 31)
        while (cc < nt && x[i + l] >= lut->t[cc]) cc++;
      code[l] = cc;
    }
    if (bits == 16) {
      for (int l = 0; l < 4; l++) o16[i + l] = static_cast<uint16_t>(code[l]);
    } else if (bits == 8) {
      for (int l = 0; l < 4; l++) o8[i + l] = static_cast<uint8_t>(code[l]);
    } else {
      o8[i / 2] = static_cast<uint8_t>(code[0] | (code[1] << 4));
      o8[i / 2 + 1] = static_cast<uint8_t>(code[2] | (code[3] << 4));
    }
  }
  if (i < n) {
    void* rest = bits == 4 ? static_cast<void*>(o8 + i / 2)
                 : bits == 8 ? static_cast<void*>(o8 + i) : static_cast<void*>(o16 + i);
    f32_code_kmeans1d_assign__scalar(x + i, n - i, lut, bits, rest);
  }
}

}  // namespace kernels
}  // namespace lowbit
