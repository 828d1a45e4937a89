// lowbit's thread pool (csrc/runtime/threads.cc): how many threads the kernels use, the ways to
// spread work over them, and OnceFlags for work the tasks share. lowbit/runtime.h includes this
// header.
#pragma once
#include <atomic>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

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

// Threads used by parallel kernels (>= 1). Default: LOWBIT_NUM_THREADS or the number of cores.
int num_threads();
void set_num_threads(int n);

// Runs fn(0) .. fn(n - 1), spread over up to num_threads() threads (the caller included), and
// returns when all are done. Tasks are taken dynamically. If another thread is inside a
// parallel_for already, runs all tasks on the calling thread (no nesting, no oversubscription).
void parallel_for(size_t n, FunctionRef<void(size_t)> fn);

// parallel_for for tasks that need scratch memory of their own: fn(task, worker) with worker <
// max_workers naming the thread that runs the task in this call (tasks with the same worker never
// overlap), so per-worker buffers sized max_workers serve every task. Uses at most max_workers
// threads.
void parallel_for_workers(size_t n, size_t max_workers, FunctionRef<void(size_t, size_t)> fn);

// Runs fn(begin, end) over [0, n) in pieces of at least `grain` items, in parallel.
void parallel_range(size_t n, size_t grain, FunctionRef<void(size_t, size_t)> fn);

// Work that several parallel tasks need and the first of them does (a GEMM's row block of A,
// packed by the first task that uses it): run_once(i, fn) runs fn unless another task ran or is
// running it for flag i, and returns once it has run. reset(n) before the tasks start; the storage
// is kept, so calls with at most as many flags as an earlier one allocate nothing.
class OnceFlags {
 public:
  void reset(size_t n);
  void run_once(size_t i, FunctionRef<void()> fn);

 private:
  std::unique_ptr<std::atomic<int>[]> state_;  // 0 not run, 1 running, 2 done
  size_t cap_ = 0;
};

}  // namespace lowbit
