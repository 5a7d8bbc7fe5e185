#include "compile/plan.h"

#include <chrono>
#include <limits>

namespace nnx {

void Plan::run(int nthreads) {
  if (nthreads <= 1 || !tuning_) {
    for (const KernelCall& call : calls_) call(nthreads);
    return;
  }
  if (tuned_for_ != nthreads) {
    tuned_for_ = nthreads;
    timed_replays_ = 0;
    best_one_.assign(calls_.size(), std::numeric_limits<double>::infinity());
    best_many_.assign(calls_.size(), std::numeric_limits<double>::infinity());
    threads_.clear();
  }
  if (timed_replays_ < kTuneReplays) {
    run_timed(nthreads);
    return;
  }
  for (size_t i = 0; i < calls_.size(); ++i) calls_[i](threads_[i]);
}

void Plan::run_timed(int nthreads) {
  using clock = std::chrono::steady_clock;
  const size_t parity = static_cast<size_t>(timed_replays_) & 1;
  for (size_t i = 0; i < calls_.size(); ++i) {
    const bool one = ((i + parity) & 1) == 0;
    const auto t0 = clock::now();
    calls_[i](one ? 1 : nthreads);
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    double& best = one ? best_one_[i] : best_many_[i];
    if (s < best) best = s;
  }
  // Counted only when every call finished: a replay that threw leaves the timings it took and is retried.
  if (++timed_replays_ == kTuneReplays) {
    threads_.resize(calls_.size());
    for (size_t i = 0; i < calls_.size(); ++i)
      threads_[i] = best_many_[i] < kParallelGain * best_one_[i] ? nthreads : 1;
  }
}

std::vector<double> Plan::profile(int nthreads, int replays) {
  using clock = std::chrono::steady_clock;
  const std::vector<int> chosen = nthreads > 1 && tuned_for_ == nthreads ? thread_choice() : std::vector<int>{};
  std::vector<double> best(calls_.size(), std::numeric_limits<double>::infinity());
  for (int r = 0; r < replays; ++r)
    for (size_t i = 0; i < calls_.size(); ++i) {
      const auto t0 = clock::now();
      calls_[i](chosen.empty() ? nthreads : chosen[i]);
      const double s = std::chrono::duration<double>(clock::now() - t0).count();
      if (s < best[i]) best[i] = s;
    }
  return best;
}

std::vector<int> Plan::thread_choice() const {
  if (!tuning_ || tuned_for_ <= 1 || timed_replays_ < kTuneReplays) return {};
  return threads_;
}

}  // namespace nnx
