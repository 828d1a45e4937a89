// The clock of `lowbit bench peak` (contract in ../peak.h): a chain of dependent register-register
// integer adds, one cycle each on every x86-64 and AArch64 core (no renamer elimination, unlike
// moves or some immediate adds), so trips * kPeakClockChain / time is the core's clock while it
// runs. Inline asm, so no compiler can fold the chain; other architectures have no clock.
#include "kernels/peak.h"

namespace lowbit {
namespace kernels {

#define LB_X8(s) s s s s s s s s
#define LB_X32(s) LB_X8(s) LB_X8(s) LB_X8(s) LB_X8(s)
static_assert(kPeakClockChain == 32, "the asm below has 32 adds");

bool peak_clock_available() {
#if defined(__x86_64__) || defined(__aarch64__)
  return true;
#else
  return false;
#endif
}

uint64_t peak_clock__scalar(uint64_t iterations) {
  uint64_t x = iterations, step = 3;
  for (uint64_t it = 0; it < iterations; it++) {
#if defined(__x86_64__)
    __asm__(LB_X32("add %[s], %[x]\n\t") : [x] "+r"(x) : [s] "r"(step));
#elif defined(__aarch64__)
    __asm__(LB_X32("add %[x], %[x], %[s]\n\t") : [x] "+r"(x) : [s] "r"(step));
#else
    x += step;
#endif
  }
  return x;
}

}  // namespace kernels
}  // namespace lowbit
