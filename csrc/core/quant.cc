// Drivers for linear quantization: split the tensor into runs, call the dispatched kernels,
// spread the work over the thread pool. Results never depend on the thread count.
#include "lowbit/quant.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "lowbit/parallel.h"
#include "lowbit/runtime.h"

namespace lowbit {
namespace {

constexpr size_t kGrain = 1 << 15;  // floats per task, at least

// Ranges per channel into mn/mx (size C). Returns false on NaN/Inf.
bool channel_ranges(const float* x, Shape3 s, float* mn, float* mx) {
  const KernelTable& k = active_kernels();
  const size_t C = s.channels;
  std::fill(mn, mn + C, INFINITY);
  std::fill(mx, mx + C, -INFINITY);
  if (s.size() == 0) return true;
  if (s.inner == 1) {  // channels are the fastest axis: column-wise updates, one partial per task
    const size_t rows = s.outer;
    const size_t grain = std::max<size_t>(1, kGrain / C);
    const size_t ntasks = std::min<size_t>((rows + grain - 1) / grain, 4 * num_threads());
    const size_t per = (rows + ntasks - 1) / ntasks;
    std::vector<float> pmn(ntasks * C, INFINITY), pmx(ntasks * C, -INFINITY);
    std::vector<char> ok(ntasks, 1);
    parallel_for(ntasks, [&](size_t t) {
      for (size_t r = t * per; r < std::min(rows, (t + 1) * per); r++)
        ok[t] &= k.f32_f32_cminmax(x + r * C, C, &pmn[t * C], &pmx[t * C]);
    });
    for (size_t t = 0; t < ntasks; t++) {
      if (!ok[t]) return false;
      for (size_t c = 0; c < C; c++) {
        mn[c] = std::min(mn[c], pmn[t * C + c]);
        mx[c] = std::max(mx[c], pmx[t * C + c]);
      }
    }
    return true;
  }
  // Runs of `inner` values, cut into pieces; one partial (min, max) per (o, c, piece).
  const size_t pieces = (s.inner + kGrain - 1) / kGrain;
  const size_t plen = (s.inner + pieces - 1) / pieces;
  const size_t n = s.outer * C * pieces;
  std::vector<float> pmn(n), pmx(n);
  std::vector<char> ok(n);
  parallel_range(n, std::max<size_t>(1, kGrain / plen), [&](size_t b, size_t e) {
    for (size_t t = b; t < e; t++) {
      const size_t run = t / pieces, p = t % pieces;
      const size_t start = p * plen, len = std::min(plen, s.inner - start);
      ok[t] = k.f32_f32_minmax(x + run * s.inner + start, len, &pmn[t], &pmx[t]);
    }
  });
  for (size_t t = 0; t < n; t++) {
    if (!ok[t]) return false;
    const size_t c = (t / pieces) % C;
    mn[c] = std::min(mn[c], pmn[t]);
    mx[c] = std::max(mx[c], pmx[t]);
  }
  return true;
}

}  // namespace

void code_range(int bits, bool symmetric, bool narrow, int* qmin, int* qmax) {
  if (symmetric) {
    *qmax = (1 << (bits - 1)) - 1;
    *qmin = narrow ? -*qmax : -*qmax - 1;
  } else {
    *qmin = 0;
    *qmax = (1 << bits) - 1;
  }
}

// A subnormal scale has few significant bits, and rounding the division down can leave the
// range uncovered (the extreme values would then saturate by more than half a step): such a
// scale is raised, an ulp at a time, until scale * qmax covers the range.
namespace {
float covering(float s, double range, int qmax) {
  if (s > 0.0f && s < std::numeric_limits<float>::min())
    while (static_cast<double>(s) * qmax < range) s = std::nextafter(s, INFINITY);
  return s;
}
}  // namespace

void choose_params(float mn, float mx, int bits, bool symmetric, float* scale, int32_t* zp) {
  int qmin, qmax;
  code_range(bits, symmetric, true, &qmin, &qmax);
  *zp = 0;
  if (mn == mx) {  // constant channel: exact round trip
    *scale = mn == 0.0f ? 1.0f : std::fabs(mn);
    *zp = (!symmetric && mn < 0.0f) ? 1 : 0;
    return;
  }
  if (symmetric) {
    const float amax = std::max(std::fabs(mn), std::fabs(mx));
    const float s = covering(amax / static_cast<float>(qmax), amax, qmax);
    *scale = s > 0.0f ? s : amax;  // underflow to 0: fall back to the coarsest exact-zero scale
    return;
  }
  const float lo = std::min(mn, 0.0f), hi = std::max(mx, 0.0f);
  float s = (hi - lo) / static_cast<float>(qmax);
  if (std::isinf(s)) s = static_cast<float>((double(hi) - double(lo)) / qmax);
  if (!(s > 0.0f)) s = hi - lo;
  s = covering(s, static_cast<double>(hi) - lo, qmax);
  float z = std::nearbyint(-lo / s);
  z = std::min(std::max(z, 0.0f), static_cast<float>(qmax));
  *scale = s;
  *zp = static_cast<int32_t>(z);
}

bool choose_params(const float* mn, const float* mx, size_t n, int bits, bool symmetric,
                   float* scale, int32_t* zp) {
  for (size_t c = 0; c < n; c++)
    if (!(std::fabs(mn[c]) <= FLT_MAX && std::fabs(mx[c]) <= FLT_MAX && mn[c] <= mx[c]))
      return false;
  for (size_t c = 0; c < n; c++) choose_params(mn[c], mx[c], bits, symmetric, &scale[c], &zp[c]);
  return true;
}

namespace {
template <int PER>
void pack_codes_t(const uint8_t* codes, size_t n, uint8_t* out) {
  constexpr int w = 8 / PER;
  constexpr unsigned mask = (1u << w) - 1;
  const size_t full = n / PER;
  for (size_t i = 0; i < full; i++) {
    unsigned b = 0;
    for (int j = 0; j < PER; j++) b |= (codes[i * PER + j] & mask) << (w * j);
    out[i] = static_cast<uint8_t>(b);
  }
  if (n % PER) {
    unsigned b = 0;
    for (size_t j = 0; j < n % PER; j++) b |= (codes[full * PER + j] & mask) << (w * j);
    out[full] = static_cast<uint8_t>(b);
  }
}

template <int PER>
void unpack_codes_t(const uint8_t* packed, size_t n, bool is_signed, uint8_t* out) {
  constexpr int w = 8 / PER;
  constexpr unsigned mask = (1u << w) - 1, sign = 1u << (w - 1);
  const unsigned flip = is_signed ? sign : 0u;  // (v ^ sign) - sign sign-extends from w bits
  for (size_t i = 0; i < n; i++) {
    const unsigned v = (packed[i / PER] >> (w * (i % PER))) & mask;
    out[i] = static_cast<uint8_t>((v ^ flip) - flip);
  }
}
}  // namespace

void pack_codes(const uint8_t* codes, size_t n, int per, uint8_t* out) {
  if (per == 4) pack_codes_t<4>(codes, n, out);
  else pack_codes_t<2>(codes, n, out);
}

void unpack_codes(const uint8_t* packed, size_t n, int per, bool is_signed, uint8_t* out) {
  if (per == 4) unpack_codes_t<4>(packed, n, is_signed, out);
  else unpack_codes_t<2>(packed, n, is_signed, out);
}

bool quantize_static(const float* x, Shape3 s, const float* scale, const int32_t* zp, int qmin,
                     int qmax, uint8_t* codes) {
  const KernelTable& k = active_kernels();
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  const size_t C = s.channels;
  if (s.size() == 0) return true;
  std::atomic<bool> finite{true};
  auto note = [&finite](bool ok) {
    if (!ok) finite.store(false, std::memory_order_relaxed);
  };
  if (s.inner == 1) {
    std::vector<float> zf(zp, zp + C);
    parallel_range(s.outer, std::max<size_t>(1, kGrain / C), [&](size_t b, size_t e) {
      for (size_t r = b; r < e; r++)
        note(k.f32_q8_cquantize(x + r * C, C, scale, zf.data(), lo, hi, codes + r * C));
    });
  } else {
    const size_t pieces = (s.inner + kGrain - 1) / kGrain;
    const size_t plen = (s.inner + pieces - 1) / pieces;
    const size_t n = s.outer * C * pieces;
    parallel_range(n, std::max<size_t>(1, kGrain / plen), [&](size_t b, size_t e) {
      for (size_t t = b; t < e; t++) {
        const size_t run = t / pieces, c = run % C, start = (t % pieces) * plen;
        const size_t off = run * s.inner + start, len = std::min(plen, s.inner - start);
        note(k.f32_q8_quantize(x + off, len, scale[c], static_cast<float>(zp[c]), lo, hi,
                               codes + off));
      }
    });
  }
  return finite.load();
}

bool quantize_dynamic(const float* x, Shape3 s, int bits, bool symmetric, uint8_t* codes,
                      float* scale, int32_t* zp) {
  int qmin, qmax;
  code_range(bits, symmetric, true, &qmin, &qmax);
  const KernelTable& k = active_kernels();
  if (s.outer == 1 && s.inner > 1 && s.inner <= kGrain) {
    // One channel is one short run (a weight row): range and codes while it is in L1.
    std::atomic<bool> finite{true};
    parallel_range(s.channels, std::max<size_t>(1, kGrain / s.inner), [&](size_t b, size_t e) {
      for (size_t c = b; c < e; c++) {
        const float* xc = x + c * s.inner;
        float mn, mx;
        if (!k.f32_f32_minmax(xc, s.inner, &mn, &mx)) {
          finite.store(false, std::memory_order_relaxed);
          continue;
        }
        choose_params(mn, mx, bits, symmetric, &scale[c], &zp[c]);
        k.f32_q8_quantize(xc, s.inner, scale[c], static_cast<float>(zp[c]), float(qmin),
                          float(qmax), codes + c * s.inner);
      }
    });
    return finite.load();
  }
  std::vector<float> mn(s.channels), mx(s.channels);
  if (!channel_ranges(x, s, mn.data(), mx.data())) return false;
  for (size_t c = 0; c < s.channels; c++) {
    if (s.size() == 0) {
      scale[c] = 1.0f;
      zp[c] = 0;
    } else {
      choose_params(mn[c], mx[c], bits, symmetric, &scale[c], &zp[c]);
    }
  }
  return quantize_static(x, s, scale, zp, qmin, qmax, codes);
}

void dequantize(const uint8_t* codes, bool is_signed, Shape3 s, const float* scale,
                const int32_t* zp, float* out) {
  const KernelTable& k = active_kernels();
  const size_t C = s.channels;
  if (s.size() == 0) return;
  if (s.inner == 1) {
    std::vector<float> zf(zp, zp + C);
    parallel_range(s.outer, std::max<size_t>(1, kGrain / C), [&](size_t b, size_t e) {
      for (size_t r = b; r < e; r++) {
        if (is_signed)
          k.qs8_f32_cdequantize(reinterpret_cast<const int8_t*>(codes) + r * C, C, scale,
                                zf.data(), out + r * C);
        else
          k.qu8_f32_cdequantize(codes + r * C, C, scale, zf.data(), out + r * C);
      }
    });
    return;
  }
  const size_t pieces = (s.inner + kGrain - 1) / kGrain;
  const size_t plen = (s.inner + pieces - 1) / pieces;
  parallel_range(s.outer * C * pieces, std::max<size_t>(1, kGrain / plen), [&](size_t b, size_t e) {
    for (size_t t = b; t < e; t++) {
      const size_t run = t / pieces, c = run % C, start = (t % pieces) * plen;
      const size_t off = run * s.inner + start, len = std::min(plen, s.inner - start);
      const float z = static_cast<float>(zp[c]);
      if (is_signed)
        k.qs8_f32_dequantize(reinterpret_cast<const int8_t*>(codes) + off, len, scale[c], z,
                             out + off);
      else
        k.qu8_f32_dequantize(codes + off, len, scale[c], z, out + off);
    }
  });
}

}  // namespace lowbit
