// CPU feature detection: cpuid + xgetbv on x86, getauxval on ARM (64- and 32-bit).
#include <string>
#include <vector>

#include "lowbit/runtime.h"

#if defined(LOWBIT_HAVE_X86)
#include <cpuid.h>
#elif defined(LOWBIT_HAVE_ARM64) || defined(LOWBIT_HAVE_ARM32)
#include <sys/auxv.h>
#endif

namespace lowbit {
namespace {

#if defined(LOWBIT_HAVE_X86)
std::vector<std::string> detect() {
  std::vector<std::string> f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool has_fma = c & (1u << 12), has_f16c = c & (1u << 29), has_avx = c & (1u << 28);
  if (c & (1u << 19)) f.push_back("sse4.1");
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  const bool os_ymm = (xcr0 & 0x6) == 0x6;    // SSE and AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;  // plus opmask and the upper zmm halves
  if (!os_ymm) return f;
  if (has_avx) f.push_back("avx");
  if (has_fma) f.push_back("fma");
  if (has_f16c) f.push_back("f16c");
  unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
  if (__get_cpuid_count(7, 0, &a, &b7, &c7, &d7)) {
    unsigned x, y, z;
    if (a >= 1) __get_cpuid_count(7, 1, &a71, &x, &y, &z);
  }
  if (b7 & (1u << 5)) f.push_back("avx2");
  if (a71 & (1u << 4)) f.push_back("avxvnni");
  if (os_zmm) {
    if (b7 & (1u << 16)) f.push_back("avx512f");
    if (b7 & (1u << 17)) f.push_back("avx512dq");
    if (b7 & (1u << 30)) f.push_back("avx512bw");
    if (b7 & (1u << 31)) f.push_back("avx512vl");
    if (c7 & (1u << 11)) f.push_back("avx512vnni");
  }
  return f;
}
#elif defined(LOWBIT_HAVE_ARM64)
std::vector<std::string> detect() {
  std::vector<std::string> f;
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  if (hw & (1ul << 1)) f.push_back("neon");      // HWCAP_ASIMD
  if (hw & (1ul << 20)) f.push_back("dotprod");  // HWCAP_ASIMDDP
  if (hw2 & (1ul << 13)) f.push_back("i8mm");    // HWCAP2_I8MM
  return f;
}
#elif defined(LOWBIT_HAVE_ARM32)
// Reported for information only: 32-bit builds have scalar kernels only (cpu_note()).
std::vector<std::string> detect() {
  std::vector<std::string> f;
  const unsigned long hw = getauxval(AT_HWCAP);
  if (hw & (1ul << 12)) f.push_back("neon");   // HWCAP_NEON
  if (hw & (1ul << 16)) f.push_back("vfpv4");  // HWCAP_VFPv4
  return f;
}
#else
std::vector<std::string> detect() { return {}; }
#endif

}  // namespace

const char* cpu_arch() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__arm__)
  return "arm";
#else
  return "unknown";
#endif
}

const char* cpu_note() {
#if defined(LOWBIT_HAVE_ARM32)
  return "32-bit ARM build: scalar kernels only (the NEON kernels are AArch64 code); results are "
         "bit-exact, just slower";
#elif !defined(LOWBIT_HAVE_X86) && !defined(LOWBIT_HAVE_ARM64)
  return "no SIMD kernels for this architecture: scalar kernels only";
#else
  return "";
#endif
}

const std::vector<std::string>& cpu_features() {
  static const std::vector<std::string> features = detect();
  return features;
}

}  // namespace lowbit
