// Bindings of the maxout family: the (outer, groups, pieces, inner) view of maxout/maxout.h from x's shape
// and the axis, checked, then the kernels through run_kernel (so nnx.compile records them). The ops layer
// (python/nnx/ops/maxout.py) has checked the arguments and allocated the output.
#include <pybind11/numpy.h>

#include <string>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "maxout/maxout.h"

namespace nnx {
namespace {

template <class T>
MaxoutShape maxout_shape(const View<const T>& x, int64_t pieces, int64_t axis) {
  NNX_REQUIRE(x.ndim >= 1, "x: expected at least 1 axis, got a 0-d array");
  NNX_REQUIRE(axis >= -x.ndim && axis < x.ndim, "axis: expected an axis of x (" + std::to_string(x.ndim) +
                                                " dimensions), got " + std::to_string(axis));
  const int a = static_cast<int>(axis < 0 ? axis + x.ndim : axis);
  NNX_REQUIRE(pieces >= 1 && pieces < kMaxoutMaxPieces,
              "pieces: expected 1 <= pieces < 2^24, got " + std::to_string(pieces));
  NNX_REQUIRE(x.shape[a] % pieces == 0, "pieces: the size of axis " + std::to_string(a) + " of x (" +
                                        std::to_string(x.shape[a]) + ") must be a multiple of pieces=" +
                                        std::to_string(pieces));
  NNX_REQUIRE(x.contiguous(), "x: expected a C-contiguous array");
  MaxoutShape s{1, x.shape[a] / pieces, pieces, 1};
  for (int i = 0; i < a; ++i) s.outer *= x.shape[i];
  for (int i = a + 1; i < x.ndim; ++i) s.inner *= x.shape[i];
  return s;
}

template <class T>
void forward(const py::array& x, py::array& out, int64_t pieces, int64_t axis) {
  auto X = view_in<T>(x, "x");
  auto Y = view_out<T>(out, "out");
  const MaxoutShape s = maxout_shape(X, pieces, axis);
  NNX_REQUIRE(Y.size() == s.rows() * s.inner, "out: expected x's shape with axis " + std::to_string(axis) +
                                              " divided by pieces");
  if (Y.size() == 0) return;
  const T* px = X.data;
  T* py_ = Y.data;
  run_kernel("maxout_forward", {{x, Use::read}, {out, Use::write}}, {double(pieces), double(axis)},
             [=](int nt) { maxout_forward<T>(s, px, py_, nt); });
}

template <class T>
void backward(const py::array& dy, const py::array& x, py::array& dx, int64_t pieces, int64_t axis) {
  auto DY = view_in<T>(dy, "dy");
  auto X = view_in<T>(x, "x");
  auto DX = view_out<T>(dx, "dx");
  const MaxoutShape s = maxout_shape(X, pieces, axis);
  NNX_REQUIRE(DY.contiguous(), "dy: expected a C-contiguous array");
  NNX_REQUIRE(DY.size() == s.rows() * s.inner, "dy: expected the shape of maxout(x)");
  NNX_REQUIRE(DX.size() == X.size(), "dx: expected the shape of x");
  if (DX.size() == 0) return;
  const T *pdy = DY.data, *px = X.data;
  T* pdx = DX.data;
  run_kernel("maxout_backward", {{dy, Use::read}, {x, Use::read}, {dx, Use::write}},
             {double(pieces), double(axis)}, [=](int nt) { maxout_backward<T>(s, pdy, px, pdx, nt); });
}

}  // namespace

void bind_maxout(py::module_& m) {
  m.def("maxout", [](const py::array& x, py::array& out, int64_t pieces, int64_t axis) {
          if (is_f32(x)) forward<float>(x, out, pieces, axis);
          else forward<double>(x, out, pieces, axis);
        },
        py::arg("x"), py::arg("out"), py::arg("pieces"), py::arg("axis"),
        "out = the maximum over groups of `pieces` consecutive entries of x along axis.");
  m.def("maxout_backward", [](const py::array& dy, const py::array& x, py::array& dx, int64_t pieces,
                              int64_t axis) {
          if (is_f32(x)) backward<float>(dy, x, dx, pieces, axis);
          else backward<double>(dy, x, dx, pieces, axis);
        },
        py::arg("dy"), py::arg("x"), py::arg("dx"), py::arg("pieces"), py::arg("axis"),
        "dx = dy on the piece maxout(x) took (the first on ties), 0 on the others.");
  m.def("maxout_ukernel_name", [](bool f32) {
          return std::string(f32 ? maxout_ukernel_name<float>() : maxout_ukernel_name<double>());
        },
        py::arg("f32") = true, "Name of the maxout micro-kernel set the active ISA uses.");
}

}  // namespace nnx
