// lowbit runtime: CPU features, the one kernel table, and the thread pool.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lowbit/kernels.h"

namespace lowbit {

// A non-owning reference to a callable (no allocation, unlike std::function): valid while the
// callable lives, which for parallel_for's argument is the whole call.
template <typename Sig>
class FunctionRef;
template <typename R, typename... A>
class FunctionRef<R(A...)> {
 public:
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
  FunctionRef(F&& f)  // NOLINT: implicit, so lambdas pass straight in
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, A... a) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<A>(a)...);
        }) {}
  R operator()(A... a) const { return call_(obj_, std::forward<A>(a)...); }

 private:
  void* obj_;
  R (*call_)(void*, A...);
};

// "x86_64", "aarch64", "arm" (32-bit) or "unknown".
const char* cpu_arch();
// What this build's kernel coverage lacks on this architecture, e.g. that 32-bit ARM runs scalar
// kernels only; "" when the SIMD kernel sets are built.
const char* cpu_note();
// Features detected on this CPU (and enabled by the OS), e.g. "avx2", "avx512vnni", "dotprod".
const std::vector<std::string>& cpu_features();

// Kernel sets this build has and this CPU runs, lowest first ("scalar" always comes first).
std::vector<std::string> supported_isas();
// The kernel set in use. Chosen once: the best supported, or LOWBIT_ISA when it names a supported
// one (an environment override can only downgrade).
const KernelTable& active_kernels();
const char* active_isa();
// Switches the kernel set; returns false (and changes nothing) if `isa` is not supported here.
bool set_isa(const std::string& isa);
// The table of one supported kernel set, or nullptr.
const KernelTable* kernel_table(const std::string& isa);

// Threads used by parallel kernels (>= 1). Default: LOWBIT_NUM_THREADS or the number of cores.
int num_threads();
void set_num_threads(int n);

// Runs fn(0) .. fn(n - 1), spread over up to num_threads() threads (the caller included), and
// returns when all are done. Tasks are taken dynamically. If another thread is inside a
// parallel_for already, runs all tasks on the calling thread (no nesting, no oversubscription).
void parallel_for(size_t n, FunctionRef<void(size_t)> fn);

}  // namespace lowbit
