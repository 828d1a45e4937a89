// lowbit kernel contracts and the dispatch table.
//
// A kernel's name states its contract: <input>_<output>_<op>__<isa>, e.g. u8s8_epi_gemm__avx2,
// f32_q8_quantize__neon, s8cb4_s64_gemm__scalar.
//   <input>   the type it reads; a product names both operands, A then B (u8s8: uint8 A times
//             int8 B).
//   <output>  the type it writes (for a reduction, the type of the result).
//   <op>      what it does; a leading `c` (cquantize, cminmax) means column-wise: element i of
//             the run has its own parameters or its own accumulator.
//   <isa>     the kernel set: scalar, avx2, avx512, avxvnni, avx512vnni, neon, neondot, i8mm.
// Types: f32; s8 u8 s16 u16 s32 u32 s64 (integers); s7 u7 (8-bit values that fit 7 bits); q8
// (8-bit codes, int8 or uint8 by their range), qs8 qu8 (int8, uint8 codes); q4 (4-bit codes in groups with a scale and a zero point each, Int4Tile
// below); u4 (4-bit codes, two
// a byte, low nibble first); s4 (values in [-8, 7] held two a byte as value + 8, in blocks of 64
// values in 32 bytes: byte j of a block holds value j in its low nibble and value 32 + j in its
// high nibble); cb4 (4-bit codes into a 16-entry table, the codebook GEMMs' layout
// below); code (4-, 8- or 16-bit codes, the width an argument); epi (the GEMM epilogue's choice:
// int32, float or 8-bit codes, GemmOut). KernelTable's fields are the names without __<isa>
// (but for the GEMM entries gemm and gemm7, which carry their formats too).
//
// Every kernel exists as a scalar reference (`__scalar`, csrc/kernels/scalar/) that is both the
// fallback and the test oracle; SIMD versions (csrc/kernels/x86/, csrc/kernels/arm/) must match
// it bit for bit.
//
// Kernel files: csrc/kernels/<arch>/<family>__<isa>.cc, <arch> scalar, x86 or arm, <family> the
// section of this header it implements (quant, gemm, int4, kmeans, codebook, transformer; peak: the benchmark's loops
// peak_<operands>_<instruction>__<isa>, csrc/kernels/peak.h), <isa> the suffix of every kernel it
// defines. The suffix also chooses the file's compile flags (cmake/kernels.cmake globs on it).
// Headers: <what>__<isa>.h needs that ISA's flags and is included by its files and those of the
// sets that extend it (avx2 <- avxvnni, avx512 <- avx512vnni, neon <- neondot, i8mm); a header with
// no __<isa> is ISA-independent (tiles.h, peak.h, scalar/quant_ref.h) or, simd_x86.h, the
// intrinsics of whichever VNNI file includes it (native or SIMDe).
#pragma once
#include <cstddef>
#include <cstdint>

namespace lowbit {

// ---- quantization --------------------------------------------------------------------------
// Rounding everywhere: q = clamp(round_half_even(x / scale) + zp, qmin, qmax), computed in float32
// (the division is IEEE, the clamp happens before the conversion to int, so no ISA's
// float->int overflow behaviour is ever reached). Codes are written as bytes: the low 8 bits of q,
// which is the int8 or uint8 code depending on [qmin, qmax].

// Min and max of a contiguous run. Returns false if any value is NaN or +-Inf (mn/mx undefined).
using f32_f32_minmax_fn = bool (*)(const float* x, size_t n, float* mn, float* mx);
// Column-wise update: mn[i] = min(mn[i], x[i]), mx[i] = max(mx[i], x[i]). False on non-finite.
using f32_f32_cminmax_fn = bool (*)(const float* x, size_t n, float* mn, float* mx);
// One scale for the run. False if any x is non-finite (codes then undefined).
using f32_q8_quantize_fn = bool (*)(const float* x, size_t n, float scale, float zp, float qmin,
                                    float qmax, uint8_t* out);
// Scale and zero point per element (a row of a tensor quantized along its last axis).
using f32_q8_cquantize_fn = bool (*)(const float* x, size_t n, const float* scale, const float* zp,
                                     float qmin, float qmax, uint8_t* out);
// out[i] = (float(q[i]) - zp) * scale, one scale for the run.
using qs8_f32_dequantize_fn = void (*)(const int8_t* q, size_t n, float scale, float zp, float* out);
using qu8_f32_dequantize_fn = void (*)(const uint8_t* q, size_t n, float scale, float zp, float* out);
// Scale and zero point per element.
using qs8_f32_cdequantize_fn = void (*)(const int8_t* q, size_t n, const float* scale,
                                        const float* zp, float* out);
using qu8_f32_cdequantize_fn = void (*)(const uint8_t* q, size_t n, const float* scale,
                                        const float* zp, float* out);
// Unpacks n values (a multiple of 64) held as s4 into int8: out[i] = value i.
using s4_s8_unpack_fn = void (*)(const uint8_t* in, size_t n, int8_t* out);

// ---- integer GEMM --------------------------------------------------------------------------
// C = (A - a_zp) (B - b_zp) with A uint8 (M x K, activations) and B int8 (K x N, weights packed
// once), exact in int32, and an epilogue the micro-kernel applies in registers before its only
// store. The driver (csrc/core/gemm.cc) packs, blocks and threads; kernels compute one tile.
//
// Each micro-kernel owns its packed-B format, stated by its GemmKernel entry (nr, kr): B is cut
// into panels of nr columns (N padded with zero columns to a multiple of nr); a panel holds
// kp / kr k-groups (K padded with zero rows to kp, a multiple of kr), and group g stores, for each
// column j < nr in turn, its kr values B[g * kr + t][j] (t < kr):
//   panel[(g * nr + j) * kr + t].
// A's rows come packed in the kernel's APack format, K padded with zeros to kp:
//   u8:         the bytes as they are;
//   s8_flipped: a ^ 0x80 (= a - 128 as int8); the driver folds 128 * colsum(B) into row_mul;
//   s16:        each byte zero-extended to int16.
enum class APack : int { u8 = 0, s8_flipped = 1, s16 = 2 };

// What the epilogue writes.
enum class GemmOut : int { s32 = 0, f32 = 1, q8 = 2 };

// One micro-kernel call: rows [0, mr) x columns [0, nc) of one panel, over the whole depth kp.
// Every per-column array is readable for nr entries (the driver pads the last panel's).
struct GemmTile {
  size_t mr, nc, kp;
  const void* a;  // packed row r at (const char*)a + r * lda
  size_t lda;     // bytes
  const int8_t* b;  // the panel
  // The exact result of entry (r, j), in wrapping int32 arithmetic:
  //   v = sum_k A[r][k] B[k][j] + row_add[r] + row_mul[r] * colsum[j]
  // (the driver puts the zero-point terms there: row_add = K za zb - zb rowsum(A), row_mul =
  // -za, plus 128 for s8_flipped A; colsum = the panel's column sums of B).
  const int32_t* row_add;
  const int32_t* row_mul;
  const int32_t* colsum;
  GemmOut out_kind;
  // f32: y = float(v) * (a_scale[r * a_scale_step] * b_scale[j]), then y += bias[j] if bias, then
  //      y = y > 0 ? y : 0 if relu (no fused multiply-add; float(v) rounds to nearest even).
  const float* a_scale;
  size_t a_scale_step;  // 0: one scale for every row; 1: one per row
  const float* b_scale;
  const float* bias;  // or null
  bool relu;
  // q8: y = float(v + bias_i32[j]) * q_scale[j] (the int32 sum wrapping, bias_i32 may be null);
  //     q = int32(round_half_even(min(max(y, q_lo), q_hi))) + q_zp, stored as its low byte.
  //     (q_lo = qmin - q_zp and q_hi = qmax - q_zp are whole numbers, so clamping before
  //     rounding equals clamping after, and no float->int conversion can overflow.) The scalar
  //     definition, which the scalar kernel calls: ref::requantize1 (kernels/scalar/quant_ref.h).
  const int32_t* bias_i32;
  const float* q_scale;
  float q_lo, q_hi;
  int32_t q_zp;
  // Entry (r, j) goes to out[r * ldo + j]: int32_t, float or uint8_t by out_kind.
  void* out;
  size_t ldo;
  // What the driver knows of the operands: bit 0 every A value < 128 (u7), bit 1 every B value
  // of the panel in [-64, 63] (s7). Only kernels entered as `gemm7` look at it.
  int narrow;
};
constexpr int kNarrowA = 1, kNarrowB = 2;

using gemm_fn = void (*)(const GemmTile& t);

// A GEMM micro-kernel and its formats: at most mr rows per call, panels of nr columns in k-groups
// of kr (B layout above), A in `apack`.
struct GemmKernel {
  gemm_fn fn;  // null: the set has no such kernel
  int mr, nr, kr;
  APack apack;
};

// ---- 4-bit weights in groups (Int4Linear; driver csrc/core/int4_linear.cc, files
// int4__<isa>.cc) ---------------------------------------------------------------------------
// Rows [0, mr) of A (int8 activations, each row with its own scale) times one panel of nc <= 16
// columns of q4 weights: 4-bit codes u in [0, 15] held as s4 bytes (lowbit/kernels.h's s4 blocks,
// nibble = u) in the gemm layout of panels of 16 columns in k-groups of 4 (B layout above), cut
// along k into groups of `group` (a multiple of 4) with a zero point and a scale per (group g,
// column j): zero[g * 16 + j] (u8) and scale[g * 16 + j] (IEEE binary16 bits, finite, >= 0);
// group <= 4096, so every integer below fits int32.
// For each row r and column j < nc:
//   acc_g = sum_{k in group g} u[k][j] * a[r][k] - zero[g][j] * asum[r * ngroups + g]  (int32,
//           exact: |acc_g| <= 2 * 15 * 128 * group)
//   y = fma(float(scale[g][j]), float(acc_g), y) for g = 0 .. ngroups - 1, from y = 0 (one
//       rounding per group, IEEE fused multiply-add)
//   out[r * ldo + j] = y * (a_scale[r] * col_scale[j]) + bias[j]  (a multiply, then an add; no
//       add when bias is null)
// asum[r * ngroups + g] is the sum of row r's activations in group g (given). The panel holds
// kp = ngroups * group values per column; A rows hold kp values (zeros past K).
struct Int4Tile {
  size_t mr, nc, kp, group, ngroups;
  const int8_t* a;  // row r at a + r * lda
  size_t lda;
  const uint8_t* b;        // the panel's s4 bytes (kp * 16 / 2)
  const uint8_t* zero;     // ngroups * 16
  const uint16_t* scale;   // ngroups * 16
  const int32_t* asum;     // mr * ngroups
  const float* a_scale;    // mr
  const float* col_scale;  // 16 (the driver pads the last panel's)
  const float* bias;       // 16, or null
  float* out;
  size_t ldo;
};
using s8q4_f32_gemm_fn = void (*)(const Int4Tile& t);

// ---- k-means (drivers in csrc/core/kmeans_*.cc, files kmeans__<isa>.cc) --------------------
// Nearest centroid of each of n points x (rows of d floats, contiguous) among k centroids c (rows
// of d floats): idx[i] = the first j minimising the score s_j = hn[j] - x_i . c_j, hn[j] =
// |c_j|^2 / 2 (given). The score is accumulated in float32 in the order t = 0 .. d-1 as
// s = fma(-x[t], c[j][t], s), one fused multiply-add (a single rounding, as IEEE 754 defines
// it), so every ISA computes the same score bit for bit; equal scores keep the lower j.
using f32_u32_kmeans_assign_fn = void (*)(const float* x, size_t n, size_t d, const float* c,
                                          const float* hn, size_t k, uint32_t* idx);

// 1-D assignment by thresholds t[0] <= ... <= t[nt-1]: code(x) = #{j : x >= t[j]}. A lookup
// table over a uniform grid gives the start: g = (uint32)clamp((x - lo) * inv_w, 0, nbins - 1)
// (float32 subtract, multiply, clamp, truncate), code = lut[g] & 0x7FFFFFFF, then, if bit 31 of
// lut[g] is set, code steps up while code < nt and x >= t[code]. The table must make that
// exact: bits 0-30 a lower bound of code(x) for every x in bin g, and bit 31 set unless they
// are code(x) itself (no threshold falls in bin g).
struct Kmeans1dLut {
  const float* t;
  uint32_t nt;
  float lo, inv_w;
  uint32_t nbins;
  const uint32_t* lut;
};
// Codes of x[0..n) written as `bits` = 4 (two per byte, element 2i in the low nibble of byte i;
// an odd n leaves the last high nibble 0), 8 (uint8) or 16 (uint16, native endian).
using f32_code_kmeans1d_assign_fn = void (*)(const float* x, size_t n, const Kmeans1dLut* lut,
                                             int bits, void* out);

// ---- codebooks (drivers in csrc/core/kmeans_common.cc, codebook_linear.cc; files
// codebook__<isa>.cc) ----------------------------------------------------------------------

// Codebook decode: out[i * d + t] = table[code(i) * d + t] for i < n, t < d. u4: code(i) is
// nibble i of `codes` (low nibble first) and the table holds 16 rows; u8 / u16: one code per
// element, the table holds at least max(code) + 1 rows. flags & kLookupStream: the output is
// large and not read back soon, so the kernel may write it with non-temporal stores (the values
// are the same either way).
constexpr int kLookupStream = 1;
using u4_f32_lookup_fn = void (*)(const uint8_t* codes, size_t n, const float* table, size_t d,
                                  float* out, int flags);
using u8_f32_lookup_fn = void (*)(const uint8_t* codes, size_t n, const float* table, size_t d,
                                  float* out, int flags);
using u16_f32_lookup_fn = void (*)(const uint16_t* codes, size_t n, const float* table, size_t d,
                                   float* out, int flags);

// Codebook GEMMs (CodebookLinear), exact in integers: y[r * ldy + c] = sum_{i < kp} x[r * ldx + i]
// * w(c, i) for r < mr, c < nr, summed in int64; kp a multiple of 64.
// s8cb4_s64_gemm: 4-bit codes into a table of 16 int8 entries, w(c, i) = table[code(c, i)], x
// int8; |x| and |table| <= 127. Row c starts at w + c * ldw bytes and is made of units of 64
// weights in 32 bytes: byte j of unit u holds the code of weight 64u + j in its low nibble and
// of weight 64u + 32 + j in its high nibble.
// s16s16_s64_gemm: dense int16 weights w(c, i) = w[c * ldw + i]; |x| and |w| <= kCbMaxQ.
// s16cb4_s64_gemm: the same 4-bit codes into a table of 16 int16 entries, x int16; |x| and
// |table| <= kCbMaxQ; x is given with the middle quarters of every 32 values swapped:
// x[r * ldx + 32q + perm(j)] holds activation 32q + j, perm(j) = j + 8 for 8 <= j < 16,
// j - 8 for 16 <= j < 24, j otherwise.
constexpr int kCbMaxQ = 4095;
using s8cb4_s64_gemm_fn = void (*)(size_t mr, size_t nr, size_t kp, const int8_t* x, size_t ldx,
                                   const uint8_t* w, size_t ldw, const int8_t* table, int64_t* y,
                                   size_t ldy);
using s16s16_s64_gemm_fn = void (*)(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                                    const int16_t* w, size_t ldw, int64_t* y, size_t ldy);
using s16cb4_s64_gemm_fn = void (*)(size_t mr, size_t nr, size_t kp, const int16_t* x, size_t ldx,
                                    const uint8_t* w, size_t ldw, const int16_t* table, int64_t* y,
                                    size_t ldy);

// ---- transformer encoders (driver csrc/deploy/encoder.cc, files transformer__<isa>.cc) ------
// Float kernels of an encoder layer. They are exact functions of their inputs, the same on every
// ISA: no fused multiply-add (lowbit_core builds with -ffp-contract=off), vector lanes only across
// independent outputs, and every reduction over a row in one fixed order, the 8-stripe sum: for
// s_l = sum of x[i] over i < n - n % 8 with i % 8 == l, in increasing i,
//   stripe_sum(x, n) = (((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))) + x[n8] + ... + x[n-1]
// (n8 = n - n % 8, the tail added in order). exp and erf are the polynomials of
// transformer_poly.h (its constants; each file writes its own code), rounding as nearbyint.
//
// LayerNorm of v = x + r (r may be null: v = x) over a row of n: mean = stripe_sum(v) / n,
// var = stripe_sum((v - mean)^2) / n, inv = 1 / sqrt(var + eps), y = (v - mean) * inv * gamma
// + beta, elementwise in that order. y may be x or r (each element is read before it is written).
using f32_f32_layernorm_fn = void (*)(const float* x, const float* r, size_t n, const float* gamma,
                                      const float* beta, float eps, float* y);
// GELU, y = 0.5 x (1 + erf(x / sqrt 2)) (form 0) or 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715
// x^3))) (form 1), elementwise with transformer_poly.h's erfc and exp (the formulas there); y may
// be x.
using f32_f32_gelu_fn = void (*)(const float* x, size_t n, int form, float* y);
// Softmax of a row in place: m = max, e = exp(x - m), x = e / stripe_sum(e).
using f32_f32_softmax_fn = void (*)(float* x, size_t n);
// Vector times matrix: out[c] = sum_j p[j] m[j * ldm + c] for c < cols, summed from 0 in
// increasing j (attention's scores q K^T with m = K^T, and its context P V with m = V).
using f32_f32_vecmat_fn = void (*)(const float* p, size_t n, const float* m, size_t ldm,
                                   size_t cols, float* out);
// Random Hadamard rotation of a row in place (the incoherence processing of QuIP# / QuaRot), n a
// multiple of 128: x = x * signs (elementwise), then per block of 128 the fast Walsh-Hadamard
// transform (stages h = 1, 2, 4, ..., 64: for i in the block with i & h == 0, (x[i], x[i + h]) =
// (x[i] + x[i + h], x[i] - x[i + h])), then x = x * (1 / sqrt(128)). Orthogonal: applied to the
// rows of W and of the inputs x, it leaves x W^T unchanged.
using f32_f32_hadamard_fn = void (*)(float* x, size_t n, const float* signs);
constexpr size_t kHadamardBlock = 128;

struct KernelTable {
  const char* isa;
  f32_f32_minmax_fn f32_f32_minmax;
  f32_f32_cminmax_fn f32_f32_cminmax;
  f32_q8_quantize_fn f32_q8_quantize;
  f32_q8_cquantize_fn f32_q8_cquantize;
  qs8_f32_dequantize_fn qs8_f32_dequantize;
  qu8_f32_dequantize_fn qu8_f32_dequantize;
  qs8_f32_cdequantize_fn qs8_f32_cdequantize;
  qu8_f32_cdequantize_fn qu8_f32_cdequantize;
  s4_s8_unpack_fn s4_s8_unpack;
  // u8 x s8 GEMM, exact for every input.
  GemmKernel gemm;
  // Optional faster GEMM with the same B format (nr, kr) that is exact only when the A rows fit
  // u7 or the panel fits s7 (GemmTile::narrow != 0); the driver calls it only then. It may use
  // `narrow == 3` (both) for more: u7 x s7 products can be summed in int16 for longer.
  GemmKernel gemm7;
  // Optional kernel for B held as s4 (PackedB::s4: weights of 4 bits or fewer), the same (nr, kr)
  // as gemm, A in u8, at most mr rows: it reads a panel's s4 bytes (GemmTile::b) as they are,
  // nibbles u = B + 8 in [0, 15], and computes v = sum_k A[r][k] u[k][j] + row_add[r] + row_mul[r]
  // * colsum[j] (the driver puts -8 rowsum(A) into row_add; colsum is B's). Streams half the
  // bytes of gemm, the point of it for few rows (a GEMV); more rows read panels the driver
  // unpacks into a buffer, through gemm / gemm7.
  GemmKernel gemm4;
  // 4-bit weights in groups: tiles of at most s8q4_f32_gemm_mr rows
  s8q4_f32_gemm_fn s8q4_f32_gemm;
  int s8q4_f32_gemm_mr;
  // k-means
  f32_u32_kmeans_assign_fn f32_u32_kmeans_assign;
  f32_code_kmeans1d_assign_fn f32_code_kmeans1d_assign;
  // codebooks
  u4_f32_lookup_fn u4_f32_lookup;
  u8_f32_lookup_fn u8_f32_lookup;
  u16_f32_lookup_fn u16_f32_lookup;
  s8cb4_s64_gemm_fn s8cb4_s64_gemm;
  s16s16_s64_gemm_fn s16s16_s64_gemm;
  s16cb4_s64_gemm_fn s16cb4_s64_gemm;
  // transformer encoders
  f32_f32_layernorm_fn f32_f32_layernorm;
  f32_f32_gelu_fn f32_f32_gelu;
  f32_f32_softmax_fn f32_f32_softmax;
  f32_f32_vecmat_fn f32_f32_vecmat;
  f32_f32_hadamard_fn f32_f32_hadamard;
};

#define LOWBIT_DECLARE_QUANT_KERNELS(isa)                                                          \
  bool f32_f32_minmax__##isa(const float*, size_t, float*, float*);                               \
  bool f32_f32_cminmax__##isa(const float*, size_t, float*, float*);                              \
  bool f32_q8_quantize__##isa(const float*, size_t, float, float, float, float, uint8_t*);        \
  bool f32_q8_cquantize__##isa(const float*, size_t, const float*, const float*, float, float,    \
                               uint8_t*);                                                          \
  void qs8_f32_dequantize__##isa(const int8_t*, size_t, float, float, float*);                    \
  void qu8_f32_dequantize__##isa(const uint8_t*, size_t, float, float, float*);                   \
  void qs8_f32_cdequantize__##isa(const int8_t*, size_t, const float*, const float*, float*);     \
  void qu8_f32_cdequantize__##isa(const uint8_t*, size_t, const float*, const float*, float*);     \
  void s4_s8_unpack__##isa(const uint8_t*, size_t, int8_t*);

#define LOWBIT_DECLARE_GEMM_KERNEL(isa) void u8s8_epi_gemm__##isa(const GemmTile&);
#define LOWBIT_DECLARE_GEMM7_KERNEL(isa) void u8s7_epi_gemm__##isa(const GemmTile&);
#define LOWBIT_DECLARE_GEMM4_KERNEL(isa) void u8s4_epi_gemm__##isa(const GemmTile&);

#define LOWBIT_DECLARE_INT4_KERNELS(isa) void s8q4_f32_gemm__##isa(const Int4Tile&);

#define LOWBIT_DECLARE_KMEANS_KERNELS(isa)                                                         \
  void f32_u32_kmeans_assign__##isa(const float*, size_t, size_t, const float*, const float*,     \
                                    size_t, uint32_t*);                                           \
  void f32_code_kmeans1d_assign__##isa(const float*, size_t, const Kmeans1dLut*, int, void*);

#define LOWBIT_DECLARE_CODEBOOK_KERNELS(isa)                                                       \
  void u4_f32_lookup__##isa(const uint8_t*, size_t, const float*, size_t, float*, int);           \
  void u8_f32_lookup__##isa(const uint8_t*, size_t, const float*, size_t, float*, int);           \
  void u16_f32_lookup__##isa(const uint16_t*, size_t, const float*, size_t, float*, int);         \
  void s8cb4_s64_gemm__##isa(size_t, size_t, size_t, const int8_t*, size_t, const uint8_t*,       \
                             size_t, const int8_t*, int64_t*, size_t);                            \
  void s16s16_s64_gemm__##isa(size_t, size_t, size_t, const int16_t*, size_t, const int16_t*,     \
                              size_t, int64_t*, size_t);                                          \
  void s16cb4_s64_gemm__##isa(size_t, size_t, size_t, const int16_t*, size_t, const uint8_t*,     \
                              size_t, const int16_t*, int64_t*, size_t);

#define LOWBIT_DECLARE_TRANSFORMER_KERNELS(isa)                                                    \
  void f32_f32_layernorm__##isa(const float*, const float*, size_t, const float*, const float*,   \
                                float, float*);                                                   \
  void f32_f32_gelu__##isa(const float*, size_t, int, float*);                                    \
  void f32_f32_softmax__##isa(float*, size_t);                                                    \
  void f32_f32_vecmat__##isa(const float*, size_t, const float*, size_t, size_t, float*);          \
  void f32_f32_hadamard__##isa(float*, size_t, const float*);

namespace kernels {
LOWBIT_DECLARE_QUANT_KERNELS(scalar)
LOWBIT_DECLARE_GEMM_KERNEL(scalar)
LOWBIT_DECLARE_GEMM4_KERNEL(scalar)
LOWBIT_DECLARE_INT4_KERNELS(scalar)
LOWBIT_DECLARE_KMEANS_KERNELS(scalar)
LOWBIT_DECLARE_CODEBOOK_KERNELS(scalar)
LOWBIT_DECLARE_TRANSFORMER_KERNELS(scalar)
#if defined(LOWBIT_HAVE_X86)
LOWBIT_DECLARE_QUANT_KERNELS(avx2)
LOWBIT_DECLARE_QUANT_KERNELS(avx512)
LOWBIT_DECLARE_GEMM_KERNEL(avx2)
LOWBIT_DECLARE_GEMM7_KERNEL(avx2)
LOWBIT_DECLARE_GEMM4_KERNEL(avx2)
LOWBIT_DECLARE_INT4_KERNELS(avx2)
LOWBIT_DECLARE_GEMM_KERNEL(avxvnni)
LOWBIT_DECLARE_GEMM_KERNEL(avx512vnni)
LOWBIT_DECLARE_KMEANS_KERNELS(avx2)
LOWBIT_DECLARE_CODEBOOK_KERNELS(avx2)
LOWBIT_DECLARE_TRANSFORMER_KERNELS(avx2)
LOWBIT_DECLARE_KMEANS_KERNELS(avx512)
LOWBIT_DECLARE_CODEBOOK_KERNELS(avx512)
#endif
#if defined(LOWBIT_HAVE_ARM64)
LOWBIT_DECLARE_QUANT_KERNELS(neon)
LOWBIT_DECLARE_GEMM_KERNEL(neon)
LOWBIT_DECLARE_INT4_KERNELS(neon)
LOWBIT_DECLARE_INT4_KERNELS(neondot)
LOWBIT_DECLARE_GEMM_KERNEL(neondot)
LOWBIT_DECLARE_GEMM_KERNEL(i8mm)
LOWBIT_DECLARE_KMEANS_KERNELS(neon)
LOWBIT_DECLARE_CODEBOOK_KERNELS(neon)
LOWBIT_DECLARE_TRANSFORMER_KERNELS(neon)
#endif
}  // namespace kernels

}  // namespace lowbit
