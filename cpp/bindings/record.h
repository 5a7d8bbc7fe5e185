// The one path from a binding to its kernel: run_kernel. Eagerly it releases the GIL and calls the kernel;
// while nnx.compile captures a step on this thread, it also hands the call to the Recorder, which appends it
// to the step's Plan (compile/plan.h) and keeps the arrays it touches alive (bindings/compile.cpp).
//
// A binding checks its arguments first, then calls
//   run_kernel("op", {{x, Use::read}, {y, Use::write}}, {scalar, ...}, [=](int nt) { kernel<T>(..., nt); });
// The lambda captures raw pointers, sizes and scalars by value (never a py::object, never a workspace pointer:
// it fetches its workspace when it runs). `arrays` lists every array the kernel reads or writes, so the capture
// can check that each input of each kernel was produced by an earlier kernel or is a step input, a parameter
// or other declared state, never a NumPy temporary the replay would not recompute. `attrs` are the scalars that
// define the call (geometry, activation codes, ...): two captures of a step must agree on them.
#pragma once
#include <pybind11/pybind11.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "common/threads.h"
#include "compile/plan.h"

namespace nnx {
namespace py = pybind11;

// How a kernel uses an array: reads it, writes it without reading, or reads and then writes it in place.
enum class Use : char { read = 'r', write = 'w', update = 'u' };

struct ArrayUse {
  py::handle array;  // None entries (absent optional arrays) are skipped
  Use use;
};

class Recorder {
 public:
  virtual void record(const char* op, const ArrayUse* arrays, size_t count, std::vector<double> attrs,
                      KernelCall call) = 0;
  // The step did something the plan cannot replay (e.g. a kernel returned its result to Python).
  virtual void refuse(const std::string& why) = 0;

 protected:
  ~Recorder() = default;
};

// The capture in progress on the calling thread, or null (bindings/compile.cpp).
Recorder* active_recorder();

template <class F>
void run_kernel(const char* op, const ArrayUse* arrays, size_t count, std::vector<double> attrs,
                F kernel) {
  {
    py::gil_scoped_release release;
    kernel(num_threads());
  }
  if (Recorder* r = active_recorder()) r->record(op, arrays, count, std::move(attrs), KernelCall(std::move(kernel)));
}

template <class F>
void run_kernel(const char* op, std::initializer_list<ArrayUse> arrays, std::vector<double> attrs,
                F kernel) {
  run_kernel(op, arrays.begin(), arrays.size(), std::move(attrs), std::move(kernel));
}

template <class F>
void run_kernel(const char* op, const std::vector<ArrayUse>& arrays, std::vector<double> attrs,
                F kernel) {
  run_kernel(op, arrays.data(), arrays.size(), std::move(attrs), std::move(kernel));
}

// For a binding that returns a value to Python instead of writing it into an array: a plan cannot replay it.
inline void refuse_capture(const std::string& why) {
  if (Recorder* r = active_recorder()) r->refuse(why);
}

}  // namespace nnx
