// Drivers for linear quantization: split the tensor into runs, call the dispatched kernels,
// spread the work over the thread pool. Results never depend on the thread count.
#include "lowbit/quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

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
        ok[t] &= k.f32_cminmax(x + r * C, C, &pmn[t * C], &pmx[t * C]);
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
      ok[t] = k.f32_rminmax(x + run * s.inner + start, len, &pmn[t], &pmx[t]);
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

void parallel_range(size_t n, size_t grain, FunctionRef<void(size_t, size_t)> fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  size_t ntasks = std::min<size_t>((n + grain - 1) / grain, 4 * static_cast<size_t>(num_threads()));
  if (ntasks <= 1) return fn(0, n);
  const size_t per = (n + ntasks - 1) / ntasks;
  ntasks = (n + per - 1) / per;
  parallel_for(ntasks, [&](size_t t) { fn(t * per, std::min(n, (t + 1) * per)); });
}

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
        if (!k.f32_rminmax(xc, s.inner, &mn, &mx)) {
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
