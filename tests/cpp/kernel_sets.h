// Helpers the kernel tests share: every SIMD kernel set beside the scalar oracle, and test data.
#pragma once
#include <random>
#include <vector>

#include "lowbit/kernels.h"
#include "lowbit/runtime.h"

namespace lbtest {

// f(oracle, set) for each kernel set this CPU supports other than the scalar one.
template <typename F>
void for_each_simd(F f) {
  const lowbit::KernelTable* ref = lowbit::kernel_table("scalar");
  for (const auto& isa : lowbit::supported_isas())
    if (isa != "scalar") f(*ref, *lowbit::kernel_table(isa));
}

inline std::vector<float> gaussian(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> g(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

}  // namespace lbtest
