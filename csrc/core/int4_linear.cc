// The driver of lowbit::int4_linear (lowbit/int4_linear.h): packing, the activations' int8
// quantization and group sums, and the task grid of core/gemm_grid.h over the s8q4_f32_gemm tiles.
#include "lowbit/int4_linear.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "core/gemm_grid.h"
#include "core/s4_layout.h"
#include "lowbit/quant.h"
#include "lowbit/runtime.h"

namespace lowbit {
namespace {
constexpr size_t kNR = 16, kKR = 4;  // the panels of the s8q4_f32_gemm kernels
}  // namespace

Int4Weights pack_int4(const uint8_t* u, const uint8_t* zero, const uint16_t* scale,
                      const float* col_scale, size_t N, size_t K, size_t group) {
  Int4Weights w;
  w.K = K;
  w.N = N;
  w.group = group;
  w.ngroups = (K + group - 1) / group;
  w.kp = w.ngroups * group;
  w.panels = (N + kNR - 1) / kNR;
  w.codes.assign(w.panels * w.panel_bytes(), 0);
  w.zero.assign(w.panels * w.ngroups * kNR, 0);
  w.scale.assign(w.panels * w.ngroups * kNR, 0);
  w.col_scale.assign(w.panels * kNR, 0.0f);
  for (size_t n = 0; n < N; n++) {
    const size_t p = n / kNR, j = n % kNR;
    uint8_t* panel = w.codes.data() + p * w.panel_bytes();
    for (size_t k = 0; k < K; k++) {
      const size_t i = internal::panel_index(k, j, kNR, kKR);
      panel[internal::s4_byte(i)] |= static_cast<uint8_t>((u[n * K + k] & 15) << internal::s4_shift(i));
    }
    for (size_t g = 0; g < w.ngroups; g++) {
      w.zero[(p * w.ngroups + g) * kNR + j] = zero[n * w.ngroups + g];
      w.scale[(p * w.ngroups + g) * kNR + j] = scale[n * w.ngroups + g];
    }
    w.col_scale[n] = col_scale[n];
  }
  return w;
}

void unpack_int4(const Int4Weights& w, uint8_t* u) {
  for (size_t n = 0; n < w.N; n++) {
    const uint8_t* panel = w.codes.data() + (n / kNR) * w.panel_bytes();
    for (size_t k = 0; k < w.K; k++)
      u[n * w.K + k] = static_cast<uint8_t>(internal::s4_nibble(panel, internal::panel_index(k, n % kNR, kNR, kKR)));
  }
}

bool int4_linear(const float* x, size_t M, const Int4Weights& w, const float* bias, float* out) {
  if (M == 0 || w.N == 0) return true;
  const KernelTable& kt = active_kernels();
  const size_t K = w.K, kp = w.kp, G = w.ngroups;
  // Activations: int8 per row (zeros past K), their scales and group sums.
  thread_local std::vector<int8_t> a;
  thread_local std::vector<float> a_scale;
  thread_local std::vector<int32_t> asum;
  thread_local std::vector<float> edge_bias;
  a.resize(M * kp);
  a_scale.resize(M);
  asum.assign(M * G, 0);
  int qmin, qmax;
  code_range(8, true, true, &qmin, &qmax);
  bool finite = true;
  for (size_t m = 0; m < M; m++) {
    const float* xr = x + m * K;
    float mn = 0.0f, mx = 0.0f;
    if (K && !kt.f32_f32_minmax(xr, K, &mn, &mx)) finite = false;
    int32_t zp;
    choose_params(mn, mx, 8, true, &a_scale[m], &zp);
    int8_t* ar = a.data() + m * kp;
    kt.f32_q8_quantize(xr, K, a_scale[m], 0.0f, float(qmin), float(qmax), reinterpret_cast<uint8_t*>(ar));
    std::fill(ar + K, ar + kp, int8_t(0));
    for (size_t k = 0; k < K; k++) asum[m * G + k / w.group] += ar[k];
  }
  if (!finite) return false;
  // The last panel's bias, padded to 16.
  const size_t last = (w.panels - 1) * kNR;
  if (bias) {
    edge_bias.assign(kNR, 0.0f);
    std::copy(bias + last, bias + w.N, edge_bias.begin());
  }
  const size_t mr = static_cast<size_t>(kt.s8q4_f32_gemm_mr);
  const internal::GemmGrid grid = internal::make_gemm_grid(M, mr, kp, w.panels, w.panel_bytes(),
                                                           static_cast<size_t>(num_threads()));
  const double work = double(M) * double(w.N) * double(kp);
  const int8_t* abuf = a.data();
  const float* as = a_scale.data();
  const int32_t* sums = asum.data();
  const float* eb = edge_bias.data();
  internal::run_grid(grid, work >= 2e6, internal::grid_workers(grid), [&](size_t task, size_t) {
    const size_t bi = grid.row_block(task), bj = grid.col_block(task);
    const size_t m0 = grid.row_begin(bi), m1 = grid.row_end(bi);
    for (size_t p = grid.col_begin(bj); p < grid.col_end(bj); p++) {
      const size_t n0 = p * kNR;
      Int4Tile t{};
      t.nc = std::min(kNR, w.N - n0);
      t.kp = kp;
      t.group = w.group;
      t.ngroups = G;
      t.lda = kp;
      t.b = w.codes.data() + p * w.panel_bytes();
      t.zero = w.zero.data() + p * G * kNR;
      t.scale = w.scale.data() + p * G * kNR;
      t.col_scale = w.col_scale.data() + n0;
      t.bias = bias ? (n0 == last ? eb : bias + n0) : nullptr;
      t.ldo = w.N;
      for (size_t r = m0; r < m1; r += mr) {
        t.mr = std::min(mr, m1 - r);
        t.a = abuf + r * kp;
        t.asum = sums + r * G;
        t.a_scale = as + r;
        t.out = out + r * w.N + n0;
        kt.s8q4_f32_gemm(t);
      }
    }
  });
  return true;
}

}  // namespace lowbit
