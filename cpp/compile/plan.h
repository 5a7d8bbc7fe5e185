// A captured step (nnx.compile): the kernel calls made by one run of a training or inference step, each
// holding the raw pointers, sizes and scalars it was called with, replayed in order without Python.
//
// Contract: a plan neither allocates nor owns the arrays behind its pointers; whoever records it keeps them
// alive for as long as the plan may run (bindings/compile.cpp holds the NumPy arrays, and owns the blocks of the
// op results made during the capture, which it reuses as the capture drops them). Each call receives the
// thread count at replay time and fetches its workspace when it runs (workspaces are per thread, and a plan
// may be replayed from another thread than the one that recorded it). A call that finds its inputs invalid
// (e.g. a class index out of range in new targets) throws; the replay stops there and the exception
// propagates to the caller, with the calls before it done. run() is not reentrant: one replay at a time
// (nnx.compile refuses calls from two threads at once).
//
// Threads per call. Every kernel gives the same bits for any thread count, so a plan may run each call with
// whichever count is fastest for it. A step of small kernels (a batch-1 MLP) runs slower with two threads
// than with one, because waking a thread and moving data between cores costs more than the kernel; in the
// same step a large GEMM gains. With nthreads > 1 a plan therefore tunes itself over its first replays:
//   1. kTuneReplays replays time every call at one thread and at nthreads, alternating from call to call
//      and replay to replay; each call gets the count with the smaller best time (nthreads only when it
//      saves at least kParallelGain);
//   2. a call's time alone misses what it does to the calls around it (data left in the other core's cache,
//      a worker thread that went to sleep between two parallel calls and must be woken: a batch-1 MLP step
//      replayed in 80 us at best but 127 us typically on two threads, against 100 us on one), so
//      kWholeReplays more replays time whole replays of three candidates (the per-call choice, every call
//      on one thread, every call on nthreads), each in a block of kWholeBlock replays in a row, as it would
//      run from then on; a block's first replay is not counted (it follows another candidate), and each
//      candidate's score is the median of the rest (typical cost, not best case). Going from the fewest
//      threads up (all on one, per call, all on nthreads), a candidate replaces the best so far only when
//      its score is below kParallelGain of that one's, and the best stays.
// Later replays run that choice. It is made again when the thread count changes.
//
// How a kernel family joins: its bindings pass each kernel call through run_kernel (bindings/record.h), as a
// lambda capturing pointers and scalars by value; nothing else is needed here.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace nnx {

using KernelCall = std::function<void(int nthreads)>;

class Plan {
 public:
  static constexpr int kTuneReplays = 6;        // 3 timings per call at each thread count
  static constexpr double kParallelGain = 0.95;  // use nthreads only when its best time is below 95% of 1 thread's
  static constexpr int kWholeBlock = 6;          // replays in a row of each of the 3 candidates
  static constexpr int kWholeReplays = 3 * kWholeBlock;

  void add(std::string op, KernelCall call) {
    ops_.push_back(std::move(op));
    calls_.push_back(std::move(call));
  }
  // Runs every call in recorded order with at most `nthreads` threads each (see "Threads per call").
  void run(int nthreads);
  size_t size() const { return calls_.size(); }
  const std::string& op(size_t i) const { return ops_[i]; }
  // Whether run() chooses threads per call (on by default); off, every call runs with nthreads.
  void set_tuning(bool on) { tuning_ = on; }
  // The thread count chosen for each call, or empty while no choice is made (nthreads 1, tuning off, or
  // still timing).
  std::vector<int> thread_choice() const;
  // The scores (seconds) of the candidates of tuning step 2 (per-call choice, all on one thread, all on
  // nthreads), or empty before they are timed.
  std::vector<double> candidate_times() const;
  // Replays the plan `replays` times, each call at the thread count run() would give it, and returns each
  // call's best time in seconds (where a step spends its time; tuning state is left as it was).
  std::vector<double> profile(int nthreads, int replays);

 private:
  void run_timed(int nthreads);
  void run_candidate();
  void run_with(const std::vector<int>& threads);
  bool chosen() const;  // tuning is on and its choice for tuned_for_ threads is made

  std::vector<std::string> ops_;
  std::vector<KernelCall> calls_;
  bool tuning_ = true;
  int tuned_for_ = 0;  // the nthreads that best_one_/best_many_ were timed at
  int timed_replays_ = 0;
  std::vector<double> best_one_, best_many_;  // best seconds per call at 1 thread and at tuned_for_
  std::vector<int> candidates_[3];             // step 2: per-call choice, all 1, all tuned_for_
  double whole_[3][kWholeBlock - 1] = {};  // replay seconds of each candidate's block but its first
  std::vector<int> threads_;  // the choice, once timed_replays_ == kTuneReplays + kWholeReplays
};

}  // namespace nnx
