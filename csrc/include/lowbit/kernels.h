// lowbit kernel contracts and the dispatch table.
//
// A kernel's name states its contract: <input>_<output>_<op>__<isa>. Every kernel exists as a
// scalar reference (`__scalar`, csrc/kernels/scalar/) that is both the fallback and the test
// oracle; SIMD versions (csrc/kernels/x86/, csrc/kernels/arm/) must match it bit for bit.
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
using f32_rminmax_fn = bool (*)(const float* x, size_t n, float* mn, float* mx);
// Column-wise update: mn[i] = min(mn[i], x[i]), mx[i] = max(mx[i], x[i]). False on non-finite.
using f32_cminmax_fn = bool (*)(const float* x, size_t n, float* mn, float* mx);
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

// ---- integer GEMM --------------------------------------------------------------------------
// Packed B (weights, int8, K x N; csrc/core/gemm.cc packs it once): panels of kNR = 16 columns;
// inside a panel, k-groups of kKG = 8 in which column j's 8 bytes are contiguous (128 bytes a
// group); K is padded with zeros to a multiple of 8 and N to a multiple of 16.
constexpr int kNR = 16;
constexpr int kKG = 8;

// How a micro-kernel wants its A rows (uint8 activations, K padded with zeros to kp):
//   u8:         the bytes as they are;
//   s8_flipped: a ^ 0x80 (= a - 128 as int8); the driver adds 128 * colsum(B) back;
//   s16:        each byte zero-extended to int16.
enum class APack : int { u8 = 0, s8_flipped = 1, s16 = 2 };

// c[r * ldc + j] = sum_{k < kp} A[r][k] * B[k][j] for r < mr (mr <= the table's gemm_mr) and the
// kNR columns j of one packed panel `b`. `a` points at row 0 in the kernel's APack format, rows
// `lda` elements apart. Exact in int32 (wrapping) arithmetic.
using gemm_u8s8s32_fn = void (*)(size_t mr, size_t kp, const void* a, size_t lda, const int8_t* b,
                                 int32_t* c, size_t ldc);

struct KernelTable {
  const char* isa;
  f32_rminmax_fn f32_rminmax;
  f32_cminmax_fn f32_cminmax;
  f32_q8_quantize_fn f32_q8_quantize;
  f32_q8_cquantize_fn f32_q8_cquantize;
  qs8_f32_dequantize_fn qs8_f32_dequantize;
  qu8_f32_dequantize_fn qu8_f32_dequantize;
  qs8_f32_cdequantize_fn qs8_f32_cdequantize;
  qu8_f32_cdequantize_fn qu8_f32_cdequantize;
  gemm_u8s8s32_fn gemm_u8s8s32;
  int gemm_mr;       // rows the GEMM micro-kernel handles at most per call
  APack gemm_apack;  // the A format it reads
};

#define LOWBIT_DECLARE_QUANT_KERNELS(isa)                                                          \
  bool f32_rminmax__##isa(const float*, size_t, float*, float*);                                  \
  bool f32_cminmax__##isa(const float*, size_t, float*, float*);                                  \
  bool f32_q8_quantize__##isa(const float*, size_t, float, float, float, float, uint8_t*);        \
  bool f32_q8_cquantize__##isa(const float*, size_t, const float*, const float*, float, float,    \
                               uint8_t*);                                                          \
  void qs8_f32_dequantize__##isa(const int8_t*, size_t, float, float, float*);                    \
  void qu8_f32_dequantize__##isa(const uint8_t*, size_t, float, float, float*);                   \
  void qs8_f32_cdequantize__##isa(const int8_t*, size_t, const float*, const float*, float*);     \
  void qu8_f32_cdequantize__##isa(const uint8_t*, size_t, const float*, const float*, float*);

#define LOWBIT_DECLARE_GEMM_KERNEL(isa)                                                            \
  void gemm_u8s8s32__##isa(size_t, size_t, const void*, size_t, const int8_t*, int32_t*, size_t);

namespace kernels {
LOWBIT_DECLARE_QUANT_KERNELS(scalar)
LOWBIT_DECLARE_GEMM_KERNEL(scalar)
#if defined(LOWBIT_HAVE_X86)
LOWBIT_DECLARE_QUANT_KERNELS(avx2)
LOWBIT_DECLARE_QUANT_KERNELS(avx512)
LOWBIT_DECLARE_GEMM_KERNEL(avx2)
LOWBIT_DECLARE_GEMM_KERNEL(avx512vnni)
#endif
#if defined(LOWBIT_HAVE_ARM64)
LOWBIT_DECLARE_QUANT_KERNELS(neon)
LOWBIT_DECLARE_GEMM_KERNEL(neon)
LOWBIT_DECLARE_GEMM_KERNEL(neondot)
LOWBIT_DECLARE_GEMM_KERNEL(i8mm)
#endif
}  // namespace kernels

}  // namespace lowbit
