// Bindings of the dropout family. The ops layer (python/nnx/ops/dropout.py) has checked p, the seed and
// the dtype and made x C-contiguous.
#include <pybind11/numpy.h>

#include <string>
#include <vector>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "dropout/dropout.h"

namespace nnx {
namespace {

// The mask's seed: an int, or a one-element uint64 array read when the kernel runs (a captured step draws a
// new seed from nnx's generator into it before each replay, as the eager step draws one per call).
struct Seed {
  uint64_t value = 0;
  const uint64_t* at = nullptr;
};

Seed seed_of(const py::object& o) {
  Seed s;
  if (py::isinstance<py::array>(o)) {
    py::array a = py::cast<py::array>(o);
    require(a.dtype().kind() == 'u' && a.itemsize() == 8 && a.size() == 1 && a.ndim() == 1,
            "seed: expected an int or a one-element uint64 array");
    s.at = static_cast<const uint64_t*>(a.data());
  } else {
    s.value = py::cast<uint64_t>(o);
  }
  return s;
}

template <class T>
void apply_py(const py::array& x, py::array& out, double p, const py::object& seed) {
  auto X = view_in<T>(x, "x");
  auto Y = view_out<T>(out, "out");
  require(X.contiguous(), "x: expected a C-contiguous array");
  require(X.size() == Y.size(), "out: expected as many elements as x");
  require(p >= 0 && p <= 1, "p: expected a dropout probability in [0, 1], got " + std::to_string(p));
  // p == 1 drops everything: every element is multiplied by 0 (a NaN stays NaN, as in PyTorch).
  const uint32_t thr = p < 1 ? dropout_threshold(p) : 0;
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  const Seed sd = seed_of(seed);
  const T* px = X.data;
  T* py_ = Y.data;
  const int64_t n = X.size();
  std::vector<double> attrs{p};
  if (sd.at == nullptr) attrs.push_back(static_cast<double>(sd.value));  // a fixed seed is part of the call
  run_kernel("dropout", {{x, Use::read}, {sd.at != nullptr ? seed : py::none(), Use::read}, {out, Use::write}},
             std::move(attrs), [=](int nt) {
               const DropoutKey key = dropout_key(sd.at != nullptr ? *sd.at : sd.value);
               dropout_apply<T>(px, py_, n, key, thr, scale, nt);
             });
}

}  // namespace

void bind_dropout(py::module_& m) {
  m.def("dropout", [](const py::array& x, py::array& out, double p, const py::object& seed) {
          if (is_f32(x)) apply_py<float>(x, out, p, seed);
          else apply_py<double>(x, out, p, seed);
        },
        py::arg("x"), py::arg("out"), py::arg("p"), py::arg("seed"),
        "out = x * mask / (1 - p), the mask a function of (seed, flat index); also the backward (x = dy). seed: an\n"
        "int, or a one-element uint64 array read when the kernel runs.");
  m.def("dropout_ukernel_name", [](bool f32) {
          return std::string(f32 ? dropout_ukernel_name<float>() : dropout_ukernel_name<double>());
        },
        py::arg("f32") = true, "Name of the dropout micro-kernel set the active ISA uses.");
}

}  // namespace nnx
