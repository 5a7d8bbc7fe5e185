// A captured step (nnx.compile): the kernel calls made by one run of a training or inference step, each
// holding the raw pointers, sizes and scalars it was called with, replayed in order without Python.
//
// Contract: a plan neither allocates nor owns the arrays behind its pointers; whoever records it keeps them
// alive for as long as the plan may run (bindings/compile.cpp holds the NumPy arrays). Each call receives the
// thread count at replay time and fetches its workspace when it runs (workspaces are per thread, and a plan
// may be replayed from another thread than the one that recorded it). A call that finds its inputs invalid
// (e.g. a class index out of range in new targets) throws; the replay stops there and the exception
// propagates to the caller, with the calls before it done.
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
  void add(std::string op, KernelCall call) {
    ops_.push_back(std::move(op));
    calls_.push_back(std::move(call));
  }
  // Runs every call in recorded order with `nthreads` threads.
  void run(int nthreads) const;
  size_t size() const { return calls_.size(); }
  const std::string& op(size_t i) const { return ops_[i]; }

 private:
  std::vector<std::string> ops_;
  std::vector<KernelCall> calls_;
};

}  // namespace nnx
