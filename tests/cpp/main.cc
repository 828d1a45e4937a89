#include <cstdio>

#include "harness.h"
#include "lowbit/runtime.h"

int main() {
  std::printf("lowbit native tests: arch %s, kernel sets:", lowbit::cpu_arch());
  for (const auto& isa : lowbit::supported_isas()) std::printf(" %s", isa.c_str());
  std::printf("\n");
  if (*lowbit::cpu_note()) std::printf("note: %s\n", lowbit::cpu_note());
  int passed = 0, failed = 0;
  for (const auto& c : lbtest::registry()) {
    const int before = lbtest::failures();
    c.fn();
    const bool ok = lbtest::failures() == before;
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", c.name);
    (ok ? passed : failed)++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
