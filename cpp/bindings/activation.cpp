// Bindings of the activation family. The ops layer (python/nnx/ops/activation.py) has already checked
// dtypes and shapes and made the inputs C-contiguous; these checks only keep a wrong call from reaching
// a kernel with a bad pointer.
#include <pybind11/numpy.h>

#include <string>

#include "activation/activation.h"
#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "common/threads.h"

namespace nnx {
namespace {

Act act_fn(int code) {
  NNX_REQUIRE(code > static_cast<int>(Act::none) && code <= static_cast<int>(kActLast),
              "act: unknown activation code " + std::to_string(code));
  return static_cast<Act>(code);
}

// Python's names of the codes; the compiler's -Wswitch flags a code added to Act without a name here.
const char* act_name(Act act) {
  switch (act) {
    case Act::none: return "none";
    case Act::relu: return "relu";
    case Act::leaky_relu: return "leaky_relu";
    case Act::sigmoid: return "sigmoid";
    case Act::tanh: return "tanh";
    case Act::elu: return "elu";
  }
  return "?";
}

template <class T>
void forward_py(const py::array& x, py::array& out, int code, double param) {
  auto X = view_in<T>(x, "x");
  auto Y = view_out<T>(out, "out");
  require_same_contiguous(X, "x", Y, "out");
  Act fn = act_fn(code);
  const T* px = X.data;
  T* py_ = Y.data;
  const int64_t n = X.size();
  const T pa = static_cast<T>(param);
  run_kernel("act_forward", {{x, Use::read}, {out, Use::write}}, {double(code), param},
             [=](int nt) { act_forward<T>(fn, px, py_, n, pa, nt); });
}

template <class T>
void backward_py(const py::array& dy, const py::array& x, py::array& out, int code, double param) {
  auto G = view_in<T>(dy, "dy");
  auto X = view_in<T>(x, "x");
  auto D = view_out<T>(out, "out");
  // One dy for every element (the ops layer's form of a broadcast scalar gradient): act_backward_one_dy.
  const bool one_dy = G.size() == 1 && X.size() > 1;
  if (!one_dy) require_same_contiguous(X, "x", G, "dy");
  require_same_contiguous(X, "x", D, "out");
  Act fn = act_fn(code);
  const T *pg = G.data, *px = X.data;
  T* pd = D.data;
  const int64_t n = X.size();
  const T pa = static_cast<T>(param);
  if (one_dy) {
    run_kernel("act_backward_one_dy", {{dy, Use::read}, {x, Use::read}, {out, Use::write}}, {double(code), param},
               [=](int nt) { act_backward_one_dy<T>(fn, pg, px, pd, n, pa, nt); });
    return;
  }
  run_kernel("act_backward", {{dy, Use::read}, {x, Use::read}, {out, Use::write}}, {double(code), param},
             [=](int nt) { act_backward<T>(fn, pg, px, pd, n, pa, nt); });
}

template <class T>
void backward_from_output_py(const py::array& dy, const py::array& y, py::array& out, int code, double slope) {
  auto G = view_in<T>(dy, "dy");
  auto Y = view_in<T>(y, "y");
  auto D = view_out<T>(out, "out");
  require_same_contiguous(Y, "y", G, "dy");
  require_same_contiguous(Y, "y", D, "out");
  NNX_REQUIRE(code >= 0 && code <= static_cast<int>(kActLast) && act_fusable(static_cast<Act>(code)),
              "activation: unknown epilogue activation code " + std::to_string(code));
  const T *pg = G.data, *py_ = Y.data;
  T* pd = D.data;
  const int64_t n = Y.size();
  const T sl = static_cast<T>(slope);
  const Act ac = static_cast<Act>(code);
  run_kernel("act_backward_from_output", {{dy, Use::read}, {y, Use::read}, {out, Use::write}}, {double(code), slope},
             [=](int nt) { act_backward_from_output<T>(ac, pg, py_, pd, n, sl, nt); });
}

template <class T>
void forward_inplace_py(py::array& x, int code, double slope) {
  auto X = view_out<T>(x, "x");
  NNX_REQUIRE(code >= 0 && code <= static_cast<int>(kActLast) && act_fusable(static_cast<Act>(code)),
              "activation: unknown epilogue activation code " + std::to_string(code));
  T* px = X.data;
  const int64_t n = X.size();
  const T sl = static_cast<T>(slope);
  const Act ac = static_cast<Act>(code);
  run_kernel("act_forward_inplace", {{x, Use::update}}, {double(code), slope},
             [=](int) { act_forward_inplace<T>(ac, px, n, sl); });
}

template <class V>
void split_axis(const V& v, int axis, int64_t* outer, int64_t* n, int64_t* inner) {
  NNX_REQUIRE(v.ndim >= 1 && axis >= 0 && axis < v.ndim, "axis: out of range");
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; ++i) *outer *= v.shape[i];
  for (int i = axis + 1; i < v.ndim; ++i) *inner *= v.shape[i];
  *n = v.shape[axis];
}

template <class T>
void softmax_py(const py::array& x, py::array& out, int axis, bool log) {
  auto X = view_in<T>(x, "x");
  auto Y = view_out<T>(out, "out");
  require_same_contiguous(X, "x", Y, "out");
  int64_t outer, n, inner;
  split_axis(X, axis, &outer, &n, &inner);
  const T* px = X.data;
  T* py_ = Y.data;
  run_kernel("softmax", {{x, Use::read}, {out, Use::write}}, {double(axis), double(log)},
             [=](int nt) { softmax_forward<T>(px, py_, outer, n, inner, log, nt); });
}

// x: the forward input, or its output when from_output (softmax_backward_from_output).
template <class T>
void softmax_backward_py(const py::array& dy, const py::array& x, py::array& out, int axis, bool log,
                         bool from_output) {
  const char* xname = from_output ? "y" : "x";
  auto G = view_in<T>(dy, "dy");
  auto X = view_in<T>(x, xname);
  auto D = view_out<T>(out, "out");
  require_same_contiguous(X, xname, G, "dy");
  require_same_contiguous(X, xname, D, "out");
  int64_t outer, n, inner;
  split_axis(X, axis, &outer, &n, &inner);
  const T *pg = G.data, *px = X.data;
  T* pd = D.data;
  if (from_output)
    run_kernel("softmax_backward_from_output", {{dy, Use::read}, {x, Use::read}, {out, Use::write}},
               {double(axis), double(log)},
               [=](int nt) { softmax_backward_from_output<T>(pg, px, pd, outer, n, inner, log, nt); });
  else
    run_kernel("softmax_backward", {{dy, Use::read}, {x, Use::read}, {out, Use::write}},
               {double(axis), double(log)},
               [=](int nt) { softmax_backward<T>(pg, px, pd, outer, n, inner, log, nt); });
}

}  // namespace

void bind_activation(py::module_& m) {
  py::dict codes, epilogue;
  for (int c = 0; c <= static_cast<int>(kActLast); ++c) {
    const Act act = static_cast<Act>(c);
    if (act != Act::none) codes[act_name(act)] = c;
    if (act_fusable(act)) epilogue[act_name(act)] = c;
  }
  m.attr("ACTIVATION_CODES") = codes;     // element-wise kernels (act_forward / act_backward)
  m.attr("EPILOGUE_ACTIVATIONS") = epilogue;  // fused bias + activation of linear / conv2d
  m.def("act_forward", [](const py::array& x, py::array& out, int act, double param) {
          if (is_f32(x)) forward_py<float>(x, out, act, param);
          else forward_py<double>(x, out, act, param);
        },
        py::arg("x"), py::arg("out"), py::arg("act"), py::arg("param") = 0.0,
        "out = act(x) element-wise; act: a code of ACTIVATION_CODES; param: slope or alpha.");
  m.def("act_backward", [](const py::array& dy, const py::array& x, py::array& out, int act, double param) {
          if (is_f32(x)) backward_py<float>(dy, x, out, act, param);
          else backward_py<double>(dy, x, out, act, param);
        },
        py::arg("dy"), py::arg("x"), py::arg("out"), py::arg("act"), py::arg("param") = 0.0,
        "out = dy * act'(x), act' at the forward input x (dy of one element: that value for every element).");
  m.def("act_backward_from_output",
        [](const py::array& dy, const py::array& y, py::array& out, int act, double slope) {
          if (is_f32(y)) backward_from_output_py<float>(dy, y, out, act, slope);
          else backward_from_output_py<double>(dy, y, out, act, slope);
        },
        py::arg("dy"), py::arg("y"), py::arg("out"), py::arg("act"), py::arg("slope") = 0.01,
        "out = dy * act'(z) through the forward output y = act(z) (epilogue codes: 0 none .. 4 tanh).");
  m.def("softmax", [](const py::array& x, py::array& out, int axis, bool log) {
          if (is_f32(x)) softmax_py<float>(x, out, axis, log);
          else softmax_py<double>(x, out, axis, log);
        },
        py::arg("x"), py::arg("out"), py::arg("axis"), py::arg("log") = false,
        "out = softmax(x) (or log_softmax with log=True) along a non-negative axis.");
  m.def("softmax_backward", [](const py::array& dy, const py::array& x, py::array& out, int axis, bool log) {
          if (is_f32(x)) softmax_backward_py<float>(dy, x, out, axis, log, false);
          else softmax_backward_py<double>(dy, x, out, axis, log, false);
        },
        py::arg("dy"), py::arg("x"), py::arg("out"), py::arg("axis"), py::arg("log") = false,
        "out = gradient of softmax (log_softmax) at the forward input x.");
  m.def("softmax_backward_from_output",
        [](const py::array& dy, const py::array& y, py::array& out, int axis, bool log) {
          if (is_f32(y)) softmax_backward_py<float>(dy, y, out, axis, log, true);
          else softmax_backward_py<double>(dy, y, out, axis, log, true);
        },
        py::arg("dy"), py::arg("y"), py::arg("out"), py::arg("axis"), py::arg("log") = false,
        "out = gradient of softmax (log_softmax) through the forward output y = softmax(x) (log_softmax(x)).");
  m.def("act_forward_inplace", [](py::array& x, int act, double slope) {
          if (is_f32(x)) forward_inplace_py<float>(x, act, slope);
          else forward_inplace_py<double>(x, act, slope);
        },
        py::arg("x"), py::arg("act"), py::arg("slope") = 0.01,
        "x = act(x) in place, single-threaded (the GEMM/conv epilogue helper; epilogue codes 0 none .. 4 tanh).");
  m.def("act_ukernel_name", [](bool f32) {
          return std::string(f32 ? act_ukernel_name<float>() : act_ukernel_name<double>());
        },
        py::arg("f32") = true, "Name of the activation micro-kernel set the active ISA uses.");
}

}  // namespace nnx
