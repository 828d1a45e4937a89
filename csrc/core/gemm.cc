// The GEMM driver: packing in each kernel's format, the epilogue's per-row and per-column terms,
// and the task grid of core/gemm_grid.h (blocking, threading; shared with the codebook GEMMs);
// the micro-kernels (csrc/kernels/*/gemm__*.cc) compute the tiles and apply the epilogue in
// registers.
#include "lowbit/gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>

#include "core/gemm_grid.h"
#include "core/s4_layout.h"
#include "lowbit/quant.h"
#include "lowbit/runtime.h"

namespace lowbit {

namespace {

// Packs panel values (a multiple of 64) as s4 (lowbit/kernels.h): nibble = value + 8.
void pack_s4(const int8_t* v, size_t n, int8_t* out) {
  std::fill(out, out + n / 2, int8_t(0));
  for (size_t i = 0; i < n; i++)
    out[internal::s4_byte(i)] |= static_cast<int8_t>(static_cast<unsigned>(v[i] + 8) << internal::s4_shift(i));
}

// Value i of a panel held as s4.
int8_t s4_value(const int8_t* panel, size_t i) {
  return static_cast<int8_t>(int(internal::s4_nibble(reinterpret_cast<const uint8_t*>(panel), i)) - 8);
}

}  // namespace

bool s4_fits(const int8_t* b, size_t K, size_t N, ptrdiff_t rs, ptrdiff_t cs) {
  for (size_t k = 0; k < K; k++)
    for (size_t n = 0; n < N; n++) {
      const int8_t v = b[static_cast<ptrdiff_t>(k) * rs + static_cast<ptrdiff_t>(n) * cs];
      if (v < -8 || v > 7) return false;
    }
  return true;
}

PackedB pack_b(const int8_t* b, size_t K, size_t N, ptrdiff_t rs, ptrdiff_t cs, int nr, int kr,
               bool s4) {
  PackedB pb;
  pb.K = K;
  pb.N = N;
  pb.nr = nr;
  pb.kr = kr;
  pb.kp = (K + kr - 1) / kr * kr;
  pb.panels = (N + nr - 1) / nr;
  pb.s4 = s4;
  pb.data.assign(pb.panels * pb.panel_bytes(), 0);
  pb.colsum.assign(pb.panels * nr, 0);
  pb.s7.assign(pb.panels, 1);
  std::vector<int8_t> values(pb.panel_stride());
  for (size_t p = 0; p < pb.panels; p++) {
    int8_t* panel = s4 ? values.data() : pb.data.data() + p * pb.panel_bytes();
    if (s4) std::fill(values.begin(), values.end(), int8_t(0));
    const size_t nc = std::min<size_t>(nr, N - p * nr);
    for (size_t k = 0; k < K; k++) {
      const int8_t* src = b + static_cast<ptrdiff_t>(k) * rs + static_cast<ptrdiff_t>(p * nr) * cs;
      for (size_t j = 0; j < nc; j++) {
        const int8_t v = src[static_cast<ptrdiff_t>(j) * cs];
        panel[internal::panel_index(k, j, nr, kr)] = v;
        pb.colsum[p * nr + j] += v;
        if (v < -64 || v > 63) pb.s7[p] = 0;
      }
    }
    if (s4) pack_s4(values.data(), values.size(), pb.data.data() + p * pb.panel_bytes());
  }
  pb.all_s7 = std::all_of(pb.s7.begin(), pb.s7.end(), [](uint8_t f) { return f != 0; });
  return pb;
}

PackedB pack_b(const int8_t* b, size_t K, size_t N, ptrdiff_t rs, ptrdiff_t cs) {
  const GemmKernel& g = active_kernels().gemm;
  return pack_b(b, K, N, rs, cs, g.nr, g.kr);
}

PackedB pack_b_s4(const int8_t* b, size_t K, size_t N, ptrdiff_t rs, ptrdiff_t cs) {
  const GemmKernel& g = active_kernels().gemm;
  return pack_b(b, K, N, rs, cs, g.nr, g.kr, true);
}

void unpack_b(const PackedB& pb, int8_t* out) {
  const size_t nr = pb.nr, kr = pb.kr;
  for (size_t n = 0; n < pb.N; n++) {
    const int8_t* panel = pb.data.data() + (n / nr) * pb.panel_bytes();
    for (size_t k = 0; k < pb.K; k++) {
      const size_t i = internal::panel_index(k, n % nr, nr, kr);
      out[k * pb.N + n] = pb.s4 ? s4_value(panel, i) : panel[i];
    }
  }
}

namespace {

// B in the format (nr, kr): b itself, or its repacked copy, made once (and held by *hold).
const PackedB* in_format(const PackedB& b, int nr, int kr, std::shared_ptr<const PackedB>* hold) {
  if (b.nr == nr && b.kr == kr) return &b;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (!b.repacked || b.repacked->nr != nr || b.repacked->kr != kr) {
    std::vector<int8_t> plain(b.K * b.N);
    unpack_b(b, plain.data());
    b.repacked = std::make_shared<const PackedB>(
        pack_b(plain.data(), b.K, b.N, static_cast<ptrdiff_t>(b.N), 1, nr, kr, b.s4));
  }
  *hold = b.repacked;
  return hold->get();
}

// Where A's rows come from: uint8 codes, or float rows that are quantized per row on the way
// into the packed buffer (dynamic activations; the row parameters go to dyn_scale / dyn_zp).
struct ASource {
  const uint8_t* u8 = nullptr;
  size_t lda = 0;
  const float* f32 = nullptr;
  int bits = 8;
  float* dyn_scale = nullptr;
  int32_t* dyn_zp = nullptr;
};

size_t apack_elem(APack f) { return f == APack::s16 ? 2 : 1; }

// Writes K codes (padded with zeros to kp) in format f.
void put_row(const uint8_t* src, size_t K, size_t kp, APack f, uint8_t* dst) {
  if (f == APack::s16) {
    int16_t* d = reinterpret_cast<int16_t*>(dst);
    for (size_t k = 0; k < K; k++) d[k] = src[k];
    std::fill(d + K, d + kp, int16_t(0));
    return;
  }
  if (f == APack::s8_flipped)
    for (size_t k = 0; k < K; k++) dst[k] = src[k] ^ 0x80;
  else if (dst != src)  // u8, unless the row was quantized in place
    std::memcpy(dst, src, K);
  std::fill(dst + K, dst + kp, uint8_t(0));
}

// Rows up to which s4 B is read as it is held by gemm4 (GEMV-like calls); more rows unpack it.
constexpr size_t kGemm4Rows = 4;

// One GEMM call's plan and buffers.
struct Run {
  const KernelTable* kt;
  ASource src;
  size_t M, K, kp;
  const PackedB* b;
  const OutputStage* os;
  // The second kernel, for the panels (or row blocks) that allow it: gemm7, or gemm4 reading s4
  // B as it is held (few rows; s4 panels all fit s7, so it takes them all).
  bool use7;                   // the set has that kernel and some (block, panel) may take it
  const GemmKernel* k7;
  bool direct4;                // k7 is gemm4
  internal::GemmGrid grid;     // row blocks x column blocks of panels
  // packed A: for the main kernel and (if use7) for k7; row terms per row (row_add_7: k7's,
  // which differs from row_add when k7 is gemm4)
  uint8_t *a_main, *a_7;
  int32_t *row_add, *row_add_7, *row_mul_main, *row_mul_7;
  uint8_t* block_u7;          // per row block: every A value < 128
  OnceFlags* packed;          // per row block: packed by the first task that needs it
  std::atomic<bool> finite{true};
  // the last panel's per-column arrays, padded to nr
  int32_t* edge_i32;
  float* edge_f32;
};

// The calling thread's buffers for Run, grown as needed and kept (a model's forward allocates
// nothing once it has run at its largest batch).
struct Scratch {
  std::vector<uint8_t> a_main, a_7, block_u7;
  std::vector<int32_t> row_add, row_add_7, row_mul_main, row_mul_7, edge_i32;
  std::vector<float> edge_f32;
  OnceFlags packed;
};

template <typename T>
T* grown(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

void pack_block(Run& R, size_t bi) {
  const size_t m0 = R.grid.row_begin(bi), m1 = R.grid.row_end(bi);
  const GemmKernel& g = R.kt->gemm;
  const GemmKernel& g7 = *R.k7;
  const OutputStage& os = *R.os;
  const uint32_t K = static_cast<uint32_t>(R.K);
  const uint32_t zb = static_cast<uint32_t>(os.b_zp);
  // The rows go first into the buffer that holds plain u8 codes, if a kernel reads that format
  // (gemm7 on AVX2, gemm4, gemm elsewhere): quantized straight into it. The main kernel's other format
  // (int16 on AVX2) is then made from it only if this block needs that kernel: not when every
  // row fits u7 or every weight panel fits s7.
  const bool plain7 = R.use7 && g7.apack == APack::u8;
  const bool plain_main = !R.use7 && g.apack == APack::u8;
  const bool defer_main = plain7;
  thread_local std::vector<uint8_t> codes;
  codes.resize(R.K);
  int qmin = 0, qmax = 255;
  if (R.src.f32) code_range(R.src.bits, false, true, &qmin, &qmax);
  bool u7 = true;
  for (size_t m = m0; m < m1; m++) {
    uint8_t* plain = plain7 ? R.a_7 + m * R.kp : plain_main ? R.a_main + m * R.kp : codes.data();
    const uint8_t* row;
    if (R.src.f32) {
      const float* x = R.src.f32 + m * R.K;
      float mn, mx;
      if (!R.kt->f32_f32_minmax(x, R.K, &mn, &mx)) {
        R.finite.store(false, std::memory_order_relaxed);
        mn = mx = 0.0f;
      }
      choose_params(mn, mx, R.src.bits, false, &R.src.dyn_scale[m], &R.src.dyn_zp[m]);
      R.kt->f32_q8_quantize(x, R.K, R.src.dyn_scale[m], static_cast<float>(R.src.dyn_zp[m]),
                            float(qmin), float(qmax), plain);
      row = plain;
    } else {
      row = R.src.u8 + m * R.src.lda;
    }
    uint32_t sum = 0;
    uint8_t hi = 0;
    for (size_t k = 0; k < R.K; k++) {
      sum += row[k];
      hi |= row[k];
    }
    u7 = u7 && hi < 128;
    const uint32_t za = static_cast<uint32_t>(
        R.src.f32 ? R.src.dyn_zp[m] : (os.a_zp_row ? os.a_zp_row[m] : os.a_zp));
    // acc - zb * rowsum(A) - za * colsum(B) + K * za * zb (+ 128 colsum(B) for flipped A), in
    // wrapping uint32 arithmetic: exact whenever the true result fits int32.
    R.row_add[m] = static_cast<int32_t>(K * za * zb - zb * sum);
    // gemm4 multiplies with B + 8 (lowbit/kernels.h): minus 8 rowsum(A)
    if (R.direct4) R.row_add_7[m] = static_cast<int32_t>(static_cast<uint32_t>(R.row_add[m]) - 8u * sum);
    R.row_mul_main[m] = static_cast<int32_t>((g.apack == APack::s8_flipped ? 128u : 0u) - za);
    if (R.use7) {
      R.row_mul_7[m] = static_cast<int32_t>((g7.apack == APack::s8_flipped ? 128u : 0u) - za);
      put_row(row, R.K, R.kp, g7.apack, R.a_7 + m * R.kp * apack_elem(g7.apack));
    }
    if (!defer_main) put_row(row, R.K, R.kp, g.apack, R.a_main + m * R.kp * apack_elem(g.apack));
  }
  if (defer_main && !u7 && !R.b->all_s7)
    for (size_t m = m0; m < m1; m++)
      put_row(R.a_7 + m * R.kp, R.K, R.kp, g.apack, R.a_main + m * R.kp * apack_elem(g.apack));
  R.block_u7[bi] = u7;
}

// Tile arguments common to every call of this run (all but rows, panel and output position).
GemmTile base_tile(const Run& R) {
  const OutputStage& os = *R.os;
  GemmTile t{};
  t.kp = R.kp;
  t.out_kind = os.kind;
  t.relu = os.relu;
  if (os.kind == GemmOut::q8) {
    const int lo = os.relu ? std::max(os.qmin, os.out_zp) : os.qmin;
    t.q_lo = static_cast<float>(lo - os.out_zp);
    t.q_hi = static_cast<float>(os.qmax - os.out_zp);
    t.q_zp = os.out_zp;
  }
  return t;
}

void run_task(Run& R, size_t task) {
  const size_t bi = R.grid.row_block(task), bj = R.grid.col_block(task);
  R.packed->run_once(bi, [&] { pack_block(R, bi); });
  const OutputStage& os = *R.os;
  const PackedB& b = *R.b;
  const size_t nr = b.nr;
  const size_t m0 = R.grid.row_begin(bi), m1 = R.grid.row_end(bi);
  const size_t p0 = R.grid.col_begin(bj), p1 = R.grid.col_end(bj);
  const bool u7 = R.block_u7[bi];
  const size_t out_elem = os.kind == GemmOut::q8 ? 1 : 4;
  // The panels as the micro-kernels read them: b's own (also s4 ones for gemm4), or this block's
  // s4 panels unpacked here.
  const int8_t* panels = b.data.data();  // panel p at panels + (p - first) * stride
  size_t first = 0, stride = b.panel_bytes();
  if (b.s4 && !R.direct4) {
    thread_local std::vector<int8_t> unpacked;
    stride = b.panel_stride();
    int8_t* u = grown(unpacked, (p1 - p0) * stride);
    R.kt->s4_s8_unpack(reinterpret_cast<const uint8_t*>(b.data.data() + p0 * b.panel_bytes()),
                       (p1 - p0) * stride, u);
    panels = u;
    first = p0;
  }
  GemmTile t = base_tile(R);
  // Two passes at most: the panels gemm7 takes (s7 panels, or all when the block is u7), then
  // the others; each pass walks row strips of its kernel's height over the column block's panels.
  for (int pass = 0; pass < 2; pass++) {
    const bool seven = pass == 0;
    if (seven && !R.use7) continue;
    const GemmKernel& k = seven ? *R.k7 : R.kt->gemm;
    const uint8_t* abuf = seven ? R.a_7 : R.a_main;
    const int32_t* row_mul = seven ? R.row_mul_7 : R.row_mul_main;
    const size_t arow = R.kp * apack_elem(k.apack);
    for (size_t r = m0; r < m1; r += k.mr) {
      t.mr = std::min<size_t>(k.mr, m1 - r);
      t.a = abuf + r * arow;
      t.lda = arow;
      t.row_add = (seven ? R.row_add_7 : R.row_add) + r;
      t.row_mul = row_mul + r;
      if (os.kind == GemmOut::f32) {
        const float* as = R.src.f32 ? R.src.dyn_scale : os.a_scale;
        const bool per_row = R.src.f32 || os.a_scale_per_row;
        t.a_scale = per_row ? as + r : as;
        t.a_scale_step = per_row ? 1 : 0;
      }
      for (size_t p = p0; p < p1; p++) {
        const bool narrow_b = b.s7[p] != 0;
        if (R.use7 && seven != (u7 || narrow_b)) continue;
        const size_t n0 = p * nr;
        t.nc = std::min(nr, b.N - n0);
        t.narrow = (u7 ? kNarrowA : 0) | (narrow_b ? kNarrowB : 0);
        t.b = panels + (p - first) * stride;
        t.colsum = b.colsum.data() + n0;
        const bool edge = t.nc < nr;
        if (os.kind == GemmOut::f32) {
          t.b_scale = edge ? R.edge_f32 : (os.b_scale_per_col ? os.b_scale + n0 : nullptr);
          t.bias = os.bias ? (edge ? R.edge_f32 + nr : os.bias + n0) : nullptr;
          if (!os.b_scale_per_col && !edge) t.b_scale = R.edge_f32 + 2 * nr;  // splat
        } else if (os.kind == GemmOut::q8) {
          t.q_scale = edge ? R.edge_f32 : os.q_scale + n0;
          t.bias_i32 = os.bias_i32 ? (edge ? R.edge_i32 : os.bias_i32 + n0) : nullptr;
        }
        t.out = static_cast<char*>(os.out) + (r * os.ldo + n0) * out_elem;
        t.ldo = os.ldo;
        k.fn(t);
      }
    }
  }
}

// The per-column arrays of the last (partial) panel, padded to nr, and a splat of a single
// b_scale: edge_f32 = [scale or q_scale (nr) | bias (nr) | splat (nr)], edge_i32 = bias_i32.
void prepare_edges(Run& R) {
  const OutputStage& os = *R.os;
  const PackedB& b = *R.b;
  const size_t nr = b.nr, n0 = (b.panels - 1) * nr, nc = b.N - n0;
  std::fill(R.edge_f32, R.edge_f32 + 3 * nr, 0.0f);
  std::fill(R.edge_i32, R.edge_i32 + nr, 0);
  if (os.kind == GemmOut::f32) {
    for (size_t j = 0; j < nr; j++) R.edge_f32[2 * nr + j] = os.b_scale[0];
    for (size_t j = 0; j < nc; j++) {
      R.edge_f32[j] = os.b_scale[os.b_scale_per_col ? n0 + j : 0];
      if (os.bias) R.edge_f32[nr + j] = os.bias[n0 + j];
    }
  } else if (os.kind == GemmOut::q8) {
    for (size_t j = 0; j < nc; j++) {
      R.edge_f32[j] = os.q_scale[n0 + j];
      if (os.bias_i32) R.edge_i32[j] = os.bias_i32[n0 + j];
    }
  }
}

// Runs the GEMM of the rows of `src` (M x K) with b; false if a float source held NaN or Inf.
bool gemm_run(const ASource& src, size_t M, const PackedB& b_any, const OutputStage& os) {
  if (M == 0 || b_any.N == 0) return true;
  const KernelTable& kt = active_kernels();
  std::shared_ptr<const PackedB> hold;
  const PackedB& b = *in_format(b_any, kt.gemm.nr, kt.gemm.kr, &hold);
  Run R;
  R.kt = &kt;
  R.src = src;
  R.M = M;
  R.K = b.K;
  R.kp = b.kp;
  R.b = &b;
  R.os = &os;
  // gemm4 streams s4 B as it is held: for few rows (a GEMV), where streaming B is the cost; more
  // rows read a block of panels unpacked once (run_task) with the faster gemm / gemm7 tiles.
  R.direct4 = b.s4 && kt.gemm4.fn && M <= kGemm4Rows;
  // gemm7 pays when B has s7 panels or A may be u7 (7-bit dynamic activations, or codes < 128).
  R.k7 = R.direct4 ? &kt.gemm4 : &kt.gemm7;
  R.use7 = R.k7->fn != nullptr;
  // The grid: strips of the taller kernel's rows, A rows of every packed format, panels of B.
  const size_t mr = static_cast<size_t>(std::max(kt.gemm.mr, R.use7 ? R.k7->mr : 1));
  const size_t elem = apack_elem(kt.gemm.apack) + (R.use7 ? apack_elem(R.k7->apack) : 0);
  R.grid = internal::make_gemm_grid(M, mr, R.kp * elem, b.panels, R.kp * b.nr,
                                    static_cast<size_t>(num_threads()));
  const size_t mblocks = R.grid.mblocks;

  thread_local Scratch sc;
  R.a_main = grown(sc.a_main, M * R.kp * apack_elem(kt.gemm.apack) + 64);
  R.row_add = grown(sc.row_add, M);
  R.row_mul_main = grown(sc.row_mul_main, M);
  R.a_7 = R.use7 ? grown(sc.a_7, M * R.kp * apack_elem(R.k7->apack) + 64) : nullptr;
  R.row_add_7 = R.direct4 ? grown(sc.row_add_7, M) : R.row_add;
  R.row_mul_7 = R.use7 ? grown(sc.row_mul_7, M) : nullptr;
  R.block_u7 = grown(sc.block_u7, mblocks);
  R.edge_i32 = grown(sc.edge_i32, b.nr);
  R.edge_f32 = grown(sc.edge_f32, 3 * b.nr);
  sc.packed.reset(mblocks);
  R.packed = &sc.packed;
  prepare_edges(R);

  const double work = double(M) * double(b.N) * double(R.kp);
  internal::run_grid(R.grid, work >= 2e6, internal::grid_workers(R.grid),
                     [&](size_t t, size_t) { run_task(R, t); });

  return R.finite.load();
}

}  // namespace

void gemm_u8s8(const uint8_t* a, size_t lda, size_t M, const PackedB& b, const OutputStage& os) {
  ASource src;
  src.u8 = a;
  src.lda = lda;
  gemm_run(src, M, b, os);
}

bool linear_dynamic(const float* x, size_t M, const PackedB& w, const float* w_scale, bool per_col,
                    const float* bias, bool relu, float* out, int act_bits) {
  thread_local std::vector<float> a_scale;
  thread_local std::vector<int32_t> a_zp;
  a_scale.resize(M);
  a_zp.resize(M);
  ASource src;
  src.f32 = x;
  src.bits = act_bits;
  src.dyn_scale = a_scale.data();
  src.dyn_zp = a_zp.data();
  OutputStage os;
  os.kind = GemmOut::f32;
  os.b_scale = w_scale;
  os.b_scale_per_col = per_col;
  os.bias = bias;
  os.relu = relu;
  os.out = out;
  os.ldo = w.N;
  return gemm_run(src, M, w, os);
}

}  // namespace lowbit
