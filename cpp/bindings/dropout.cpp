// Bindings of the dropout family. The ops layer (python/nnx/ops/dropout.py) has checked p, the seed and
// the dtype and made x C-contiguous.
#include <pybind11/numpy.h>

#include <string>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "common/threads.h"
#include "dropout/dropout.h"

namespace nnx {
namespace {

template <class T>
void apply_py(const py::array& x, py::array& out, double p, uint64_t seed) {
  auto X = view_in<T>(x, "x");
  auto Y = view_out<T>(out, "out");
  require(X.contiguous(), "x: expected a C-contiguous array");
  require(X.size() == Y.size(), "out: expected as many elements as x");
  require(p >= 0 && p <= 1, "p: expected a dropout probability in [0, 1], got " + std::to_string(p));
  // p == 1 drops everything: every element is multiplied by 0 (a NaN stays NaN, as in PyTorch).
  const uint32_t thr = p < 1 ? dropout_threshold(p) : 0;
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  const DropoutKey key = dropout_key(seed);
  py::gil_scoped_release release;
  dropout_apply<T>(X.data, Y.data, X.size(), key, thr, scale, num_threads());
}

}  // namespace

void bind_dropout(py::module_& m) {
  m.def("dropout", [](const py::array& x, py::array& out, double p, uint64_t seed) {
          if (is_f32(x)) apply_py<float>(x, out, p, seed);
          else apply_py<double>(x, out, p, seed);
        },
        py::arg("x"), py::arg("out"), py::arg("p"), py::arg("seed"),
        "out = x * mask / (1 - p), the mask a function of (seed, flat index); also the backward (x = dy).");
  m.def("dropout_ukernel_name", [](bool f32) {
          return std::string(f32 ? dropout_ukernel_name<float>() : dropout_ukernel_name<double>());
        },
        py::arg("f32") = true, "Name of the dropout micro-kernel set the active ISA uses.");
}

}  // namespace nnx
