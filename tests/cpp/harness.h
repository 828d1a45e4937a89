// A minimal test harness: CHECK records failures, main() runs every TEST and prints
// "N passed, N failed" (the closing line CI reads).
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace lbtest {
struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
inline int& failures() {
  static int f = 0;
  return f;
}
struct Register {
  Register(const char* n, std::function<void()> f) { registry().push_back({n, std::move(f)}); }
};
}  // namespace lbtest

#define TEST(name)                                            \
  static void name();                                         \
  static lbtest::Register reg_##name(#name, name);            \
  static void name()

#define CHECK(cond, ...)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      lbtest::failures()++;                                                     \
      std::fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                        \
      std::fprintf(stderr, "\n");                                               \
      return;                                                                   \
    }                                                                           \
  } while (0)
