// PLACEHOLDER while the avxvnni kernel is rewritten for the per-kernel formats: forwards to the scalar
// kernel (same format: 16 columns, k-groups of 4, A as u8).
#include "lowbit/kernels.h"

namespace lowbit {
namespace kernels {
void u8s8_epi_gemm__avxvnni(const GemmTile& t) { u8s8_epi_gemm__scalar(t); }
}  // namespace kernels
}  // namespace lowbit
