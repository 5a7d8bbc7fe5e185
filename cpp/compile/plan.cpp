#include "compile/plan.h"

#include <algorithm>
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
  if (timed_replays_ < kTuneReplays + kWholeReplays) {
    run_candidate();
    return;
  }
  run_with(threads_);
}

void Plan::run_with(const std::vector<int>& threads) {
  for (size_t i = 0; i < calls_.size(); ++i) calls_[i](threads[i]);
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
    std::vector<int>& per_call = candidates_[0];
    per_call.resize(calls_.size());
    for (size_t i = 0; i < calls_.size(); ++i)
      per_call[i] = best_many_[i] < kParallelGain * best_one_[i] ? nthreads : 1;
    candidates_[1].assign(calls_.size(), 1);
    candidates_[2].assign(calls_.size(), nthreads);
  }
}

namespace {

template <size_t N>
double median(const double (&samples)[N]) {
  double v[N];
  std::copy(samples, samples + N, v);
  std::sort(v, v + N);
  return N % 2 ? v[N / 2] : (v[N / 2 - 1] + v[N / 2]) / 2;
}

}  // namespace

void Plan::run_candidate() {
  using clock = std::chrono::steady_clock;
  const int r = timed_replays_ - kTuneReplays, c = r / kWholeBlock, j = r % kWholeBlock;
  const auto t0 = clock::now();
  run_with(candidates_[c]);
  if (j > 0) whole_[c][j - 1] = std::chrono::duration<double>(clock::now() - t0).count();
  if (++timed_replays_ == kTuneReplays + kWholeReplays) {
    // From the fewest threads up (all on one, per call, all on nthreads), a candidate with more threads
    // wins only by saving kParallelGain over the best so far: a second thread has to pay for itself.
    int best = 1;
    for (int k : {0, 2})
      if (median(whole_[k]) < kParallelGain * median(whole_[best])) best = k;
    threads_ = candidates_[best];
  }
}

std::vector<double> Plan::profile(int nthreads, int replays) {
  using clock = std::chrono::steady_clock;
  const std::vector<int> counts = tuned_for_ == nthreads ? thread_choice() : std::vector<int>{};
  std::vector<double> best(calls_.size(), std::numeric_limits<double>::infinity());
  for (int r = 0; r < replays; ++r)
    for (size_t i = 0; i < calls_.size(); ++i) {
      const auto t0 = clock::now();
      calls_[i](counts.empty() ? nthreads : counts[i]);
      const double s = std::chrono::duration<double>(clock::now() - t0).count();
      if (s < best[i]) best[i] = s;
    }
  return best;
}

bool Plan::chosen() const {
  return tuning_ && tuned_for_ > 1 && timed_replays_ >= kTuneReplays + kWholeReplays;
}

std::vector<int> Plan::thread_choice() const {
  if (!chosen()) return {};
  return threads_;
}

std::vector<double> Plan::candidate_times() const {
  if (!chosen()) return {};
  return {median(whole_[0]), median(whole_[1]), median(whole_[2])};
}

}  // namespace nnx
