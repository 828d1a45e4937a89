// A small persistent thread pool behind lowbit::parallel_for (API in lowbit/parallel.h).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "lowbit/parallel.h"

namespace lowbit {
namespace {

// How long a thread that ran part of a region keeps polling for the next one (a worker) or for
// the other threads to finish (the caller) before it sleeps on a condition variable. A GEMM is
// two regions back to back (pack A, then the tiles), and a model runs layer after layer: within
// this window the next region starts without a futex wake-up, which costs tens of microseconds
// (more in a VM) against GEMMs that take 0.1-1 ms. Short enough not to hold a core that other
// programs want.
constexpr auto kSpin = std::chrono::microseconds(50);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield");
#endif
}

// Polls done() for up to kSpin; true if it became true.
template <typename Done>
bool spin_until(const Done& done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= until) return done();
  }
}

int default_threads() {
  if (const char* env = std::getenv("LOWBIT_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1 && n <= 1024) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

class Pool {
 public:
  Pool() : nthreads_(default_threads()) {}
  ~Pool() { stop_workers(); }

  int threads() const { return nthreads_.load(); }

  void resize(int n) {
    std::lock_guard<std::mutex> run(run_mutex_);  // never while a region is running
    stop_workers();
    nthreads_ = n;
  }

  // fn(task, worker): the caller is worker 0, helper thread `id` worker id + 1 (< want).
  void run(size_t n, size_t max_workers, FunctionRef<void(size_t, size_t)> fn) {
    const int want = static_cast<int>(
        std::min({n, max_workers, static_cast<size_t>(nthreads_.load())}));
    std::unique_lock<std::mutex> run(run_mutex_, std::try_to_lock);
    if (want <= 1 || !run.owns_lock()) {  // small, or the pool is busy with another caller
      for (size_t i = 0; i < n; i++) fn(i, 0);
      return;
    }
    start_workers(nthreads_ - 1);
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      ntasks_ = n;
      next_ = 0;
      helpers_ = want - 1;
      pending_ = want - 1;
      generation_++;
    }
    cv_work_.notify_all();
    work(0);
    if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lk(m_);
      cv_done_.wait(lk, [&] { return pending_ == 0; });
    }
    std::lock_guard<std::mutex> lk(m_);  // pairs with the workers' last access under m_
    fn_ = nullptr;
  }

 private:
  void work(size_t worker) {
    for (size_t i; (i = next_.fetch_add(1)) < ntasks_;) (*fn_)(i, worker);
  }

  void worker(int id, size_t seen) {  // seen: the generation current when it started
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_work_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (id >= helpers_) continue;
      }
      work(static_cast<size_t>(id) + 1);
      std::lock_guard<std::mutex> lk(m_);
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }

  void start_workers(int n) {
    if (static_cast<int>(workers_.size()) == n) return;
    stop_workers();
    stop_ = false;
    for (int i = 0; i < n; i++) workers_.emplace_back(&Pool::worker, this, i, generation_.load());
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::atomic<int> nthreads_;
  std::mutex run_mutex_;  // one parallel region at a time
  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  const FunctionRef<void(size_t, size_t)>* fn_ = nullptr;
  std::atomic<size_t> next_{0};
  size_t ntasks_ = 0;
  std::atomic<size_t> generation_{0};  // written under m_; also polled without it
  int helpers_ = 0;
  std::atomic<int> pending_{0};        // likewise
  bool stop_ = false;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: workers must not be joined during exit
  return *p;
}

}  // namespace

void OnceFlags::reset(size_t n) {
  if (cap_ < n) {
    state_.reset(new std::atomic<int>[n]);
    cap_ = n;
  }
  for (size_t i = 0; i < n; i++) state_[i].store(0, std::memory_order_relaxed);
}

void OnceFlags::run_once(size_t i, FunctionRef<void()> fn) {
  std::atomic<int>& st = state_[i];
  int expected = 0;
  if (st.load(std::memory_order_acquire) != 2 && st.compare_exchange_strong(expected, 1)) {
    fn();
    st.store(2, std::memory_order_release);
    return;
  }
  while (st.load(std::memory_order_acquire) != 2) cpu_relax();
}

int num_threads() { return pool().threads(); }
void set_num_threads(int n) { pool().resize(n < 1 ? 1 : n); }
void parallel_for(size_t n, FunctionRef<void(size_t)> fn) {
  pool().run(n, SIZE_MAX, [&](size_t i, size_t) { fn(i); });
}

void parallel_for_workers(size_t n, size_t max_workers, FunctionRef<void(size_t, size_t)> fn) {
  pool().run(n, std::max<size_t>(max_workers, 1), fn);
}

void parallel_range(size_t n, size_t grain, FunctionRef<void(size_t, size_t)> fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  size_t ntasks = std::min<size_t>((n + grain - 1) / grain, 4 * static_cast<size_t>(num_threads()));
  if (ntasks <= 1) return fn(0, n);
  const size_t per = (n + ntasks - 1) / ntasks;
  ntasks = (n + per - 1) / per;
  parallel_for(ntasks, [&](size_t t) { fn(t * per, std::min(n, (t + 1) * per)); });
}

}  // namespace lowbit
