// The GEMM driver: packing, blocking, threading, and the output stage around the micro-kernels.
#include "lowbit/gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/quant.h"
#include "lowbit/runtime.h"

namespace lowbit {

PackedB pack_b(const int8_t* b, size_t K, size_t N, ptrdiff_t rs, ptrdiff_t cs) {
  PackedB pb;
  pb.K = K;
  pb.N = N;
  pb.kp = (K + kKG - 1) / kKG * kKG;
  pb.panels = (N + kNR - 1) / kNR;
  pb.data.assign(pb.panels * pb.kp * kNR, 0);
  pb.colsum.assign(N, 0);
  // Panel by panel, k-group by k-group: reads 8 source rows x 16 columns at a time.
  for (size_t p = 0; p < pb.panels; p++) {
    int8_t* panel = pb.data.data() + p * pb.kp * kNR;
    const size_t nc = std::min<size_t>(kNR, N - p * kNR);
    for (size_t k = 0; k < K; k++) {
      const int8_t* src = b + static_cast<ptrdiff_t>(k) * rs + static_cast<ptrdiff_t>(p * kNR) * cs;
      int8_t* dst = panel + (k / kKG) * kNR * kKG + k % kKG;
      for (size_t j = 0; j < nc; j++) dst[j * kKG] = src[static_cast<ptrdiff_t>(j) * cs];
    }
    for (size_t j = 0; j < nc; j++) {
      int32_t sum = 0;
      for (size_t g = 0; g < pb.kp / kKG; g++)
        for (size_t kk = 0; kk < kKG; kk++) sum += panel[g * kNR * kKG + j * kKG + kk];
      pb.colsum[p * kNR + j] = sum;
    }
  }
  return pb;
}

void unpack_b(const PackedB& pb, int8_t* out) {
  for (size_t n = 0; n < pb.N; n++) {
    const int8_t* panel = pb.data.data() + (n / kNR) * pb.kp * kNR;
    for (size_t k = 0; k < pb.K; k++)
      out[k * pb.N + n] = panel[(k / kKG) * kNR * kKG + (n % kNR) * kKG + k % kKG];
  }
}

bool quantize_multiplier(double m, int32_t* m0, int32_t* shift) {
  if (!(m > 0.0) || !std::isfinite(m)) return false;
  int e;
  const double f = std::frexp(m, &e);  // m = f * 2^e, f in [0.5, 1)
  int64_t q = static_cast<int64_t>(std::llround(f * 2147483648.0));
  if (q == (int64_t(1) << 31)) {  // f rounded up to 1.0
    q /= 2;
    e++;
  }
  const int s = -e;  // m ~= q * 2^-(31 + s)
  if (s < -31 || s > 30) return false;
  *m0 = static_cast<int32_t>(q);
  *shift = s;
  return true;
}

namespace {

inline int64_t round_shift(int64_t v, int s) {  // v * 2^-s, ties away from zero; 1 <= s <= 62
  const int64_t half = int64_t(1) << (s - 1);
  return v >= 0 ? (v + half) >> s : -((-v + half) >> s);
}

// Packs rows [0, rows) of A (K bytes used) into the micro-kernel's format at dst, K padded to kp
// with zeros, and writes the row sums of the real bytes (needed when B has a zero point).
void pack_a(const uint8_t* a, size_t lda, size_t rows, size_t K, size_t kp, APack fmt,
            uint8_t* dst_base, int32_t* rowsum) {
  for (size_t r = 0; r < rows; r++) {
    const uint8_t* src = a + r * lda;
    int32_t sum = 0;
    for (size_t k = 0; k < K; k++) sum += src[k];
    rowsum[r] = sum;
    if (fmt == APack::s16) {
      int16_t* dst = reinterpret_cast<int16_t*>(dst_base) + r * kp;
      for (size_t k = 0; k < K; k++) dst[k] = src[k];
      std::fill(dst + K, dst + kp, int16_t(0));
    } else {
      uint8_t* dst = dst_base + r * kp;
      if (fmt == APack::u8) {
        std::memcpy(dst, src, K);
      } else {
        for (size_t k = 0; k < K; k++) dst[k] = src[k] ^ 0x80;
      }
      std::fill(dst + K, dst + kp, uint8_t(0));
    }
  }
}

// Applies the output stage to one tile: rows [m0, m0 + mr), columns [n0, n0 + nc). Each step is
// a plain loop over the tile's columns (the compiler vectorizes them); the kind is chosen once
// per row, not per element.
void output_tile(const int32_t* tile, size_t mr, size_t m0, size_t n0, size_t nc,
                 const int32_t* rowsum, bool flipped, const PackedB& b, const OutputStage& os) {
  const uint32_t K = static_cast<uint32_t>(b.K);
  const uint32_t zb = static_cast<uint32_t>(os.b_zp);
  const uint32_t* cs = reinterpret_cast<const uint32_t*>(b.colsum.data()) + n0;
  for (size_t r = 0; r < mr; r++) {
    const size_t m = m0 + r;
    const uint32_t za = static_cast<uint32_t>(os.a_zp_row ? os.a_zp_row[m] : os.a_zp);
    // acc - zb * rowsum(A) - za * colsum(B) + K * za * zb (+ 128 colsum(B) for flipped A), in
    // wrapping uint32 arithmetic: exact whenever the true result fits int32.
    const uint32_t row_term = K * za * zb - zb * static_cast<uint32_t>(rowsum[r]);
    const uint32_t col_mul = (flipped ? 128u : 0u) - za;
    const int32_t* t = tile + r * kNR;
    int32_t v[kNR];
    for (size_t j = 0; j < nc; j++)
      v[j] = static_cast<int32_t>(static_cast<uint32_t>(t[j]) + col_mul * cs[j] + row_term);
    switch (os.kind) {
      case OutputStage::Kind::int32: {
        int32_t* out = static_cast<int32_t*>(os.out) + m * os.ldo + n0;
        for (size_t j = 0; j < nc; j++) out[j] = v[j];
        break;
      }
      case OutputStage::Kind::float32: {
        float* out = static_cast<float*>(os.out) + m * os.ldo + n0;
        const float sa = os.a_scale[os.a_scale_per_row ? m : 0];
        float sb[kNR];
        for (size_t j = 0; j < nc; j++) sb[j] = os.b_scale[os.b_scale_per_col ? n0 + j : 0];
        float y[kNR];
        for (size_t j = 0; j < nc; j++) y[j] = static_cast<float>(v[j]) * (sa * sb[j]);
        if (os.bias)
          for (size_t j = 0; j < nc; j++) y[j] += os.bias[n0 + j];
        if (os.relu)
          for (size_t j = 0; j < nc; j++) y[j] = y[j] > 0.0f ? y[j] : 0.0f;
        for (size_t j = 0; j < nc; j++) out[j] = y[j];
        break;
      }
      case OutputStage::Kind::requant8: {
        uint8_t* out = static_cast<uint8_t*>(os.out) + m * os.ldo + n0;
        const int64_t lo = os.relu ? std::max(os.qmin, os.out_zp) : os.qmin;
        for (size_t j = 0; j < nc; j++) {
          const size_t n = n0 + j;
          const int64_t x = static_cast<int64_t>(v[j]) + (os.bias_i32 ? os.bias_i32[n] : 0);
          int64_t q = round_shift(x * os.m0[n], 31 + os.shift[n]) + os.out_zp;
          q = std::min<int64_t>(std::max<int64_t>(q, lo), os.qmax);
          out[j] = static_cast<uint8_t>(q);
        }
        break;
      }
    }
  }
}

}  // namespace

void gemm_u8s8(const uint8_t* a, size_t lda, size_t M, const PackedB& b, const OutputStage& os) {
  if (M == 0 || b.N == 0) return;
  const KernelTable& kt = active_kernels();
  const size_t MR = static_cast<size_t>(kt.gemm_mr), kp = b.kp;
  const size_t elem = kt.gemm_apack == APack::s16 ? 2 : 1;
  const bool flipped = kt.gemm_apack == APack::s8_flipped;
  // Row blocks: packed A blocks of at most about 256 KiB, as few as that allows and of equal
  // size (multiples of MR rows), so that B, which every row block streams once, is streamed as
  // few times as possible. Column blocks: a B block of about 128 KiB stays in L2 beside the A
  // block while the row strips of the A block pass over it.
  const size_t max_rows = std::max<size_t>(MR, (256 << 10) / std::max<size_t>(1, kp * elem));
  const size_t want_blocks = (M + max_rows - 1) / max_rows;
  const size_t mb = ((M + want_blocks - 1) / want_blocks + MR - 1) / MR * MR;
  const size_t mblocks = (M + mb - 1) / mb;  // rounding mb up may leave fewer blocks
  size_t nbp = std::max<size_t>(1, (128 << 10) / std::max<size_t>(1, kp * kNR));
  const size_t threads = static_cast<size_t>(num_threads());
  // Enough tasks to keep every thread busy (at least 2 per thread when the shape allows).
  while (nbp > 1 && mblocks * ((b.panels + nbp - 1) / nbp) < 2 * threads) nbp = (nbp + 1) / 2;
  const size_t nblocks = (b.panels + nbp - 1) / nbp;
  const double work = double(M) * double(b.N) * double(kp);
  const size_t ntasks = mblocks * nblocks;

  // A is packed once (per row block, in parallel), then every task reads its rows from there.
  const bool parallel = work >= 2e6 && ntasks > 1;
  thread_local std::vector<uint8_t> apacked;
  thread_local std::vector<int32_t> rowsum;
  apacked.resize(M * kp * elem + 64);
  rowsum.resize(M);
  uint8_t* ap = apacked.data();
  int32_t* rs = rowsum.data();
  auto pack = [&](size_t bi) {
    const size_t m0 = bi * mb, m1 = std::min(M, m0 + mb);
    pack_a(a + m0 * lda, lda, m1 - m0, b.K, kp, kt.gemm_apack, ap + m0 * kp * elem, rs + m0);
  };
  auto task = [&](size_t t) {
    const size_t bi = t / nblocks, bj = t % nblocks;
    const size_t m0 = bi * mb, m1 = std::min(M, m0 + mb);
    alignas(64) int32_t tile[8 * kNR];
    const size_t p0 = bj * nbp, p1 = std::min(b.panels, p0 + nbp);
    for (size_t r = m0; r < m1; r += MR) {
      const size_t mr = std::min(MR, m1 - r);
      const uint8_t* ar = ap + r * kp * elem;
      for (size_t p = p0; p < p1; p++) {
        kt.gemm_u8s8s32(mr, kp, ar, kp, b.data.data() + p * kp * kNR, tile, kNR);
        const size_t n0 = p * kNR;
        output_tile(tile, mr, r, n0, std::min<size_t>(kNR, b.N - n0), rs + r, flipped, b, os);
      }
    }
  };
  if (!parallel) {
    for (size_t bi = 0; bi < mblocks; bi++) pack(bi);
    for (size_t t = 0; t < ntasks; t++) task(t);
  } else {
    parallel_for(mblocks, pack);
    parallel_for(ntasks, task);
  }
}

bool linear_dynamic(const float* x, size_t M, const PackedB& w, const float* w_scale, bool per_col,
                    const float* bias, bool relu, float* out) {
  thread_local std::vector<uint8_t> codes;
  thread_local std::vector<float> a_scale;
  thread_local std::vector<int32_t> a_zp;
  codes.resize(M * w.K);
  a_scale.resize(M);
  a_zp.resize(M);
  if (!quantize_dynamic(x, Shape3{1, M, w.K}, 8, false, codes.data(), a_scale.data(), a_zp.data()))
    return false;
  OutputStage os;
  os.kind = OutputStage::Kind::float32;
  os.a_zp_row = a_zp.data();
  os.a_scale = a_scale.data();
  os.a_scale_per_row = true;
  os.b_scale = w_scale;
  os.b_scale_per_col = per_col;
  os.bias = bias;
  os.relu = relu;
  os.out = out;
  os.ldo = w.N;
  gemm_u8s8(codes.data(), w.K, M, w, os);
  return true;
}

}  // namespace lowbit
