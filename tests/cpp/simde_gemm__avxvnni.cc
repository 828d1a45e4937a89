// The AVX-VNNI GEMM kernel built a second time, against SIMDe with AVX2 flags only, as
// u8s8_epi_gemm__avxvnni_simde, so that test_gemm_simde.cc runs it on every AVX2 host. The flags
// and LOWBIT_SIMDE come from cmake/kernels.cmake when SIMDe's headers are found (Debian:
// libsimde-dev); without them this file is empty.
#if defined(LOWBIT_SIMDE)
#include "kernels/x86/gemm__avxvnni.cc"
#endif
