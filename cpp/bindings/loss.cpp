// Bindings of the loss family. The ops layer (python/nnx/ops/loss.py) has validated dtypes, shapes and
// class indices; the checks here (including the class-index range, which a kernel would otherwise use
// as an address) keep a direct call of nnx._C from crashing.
#include <pybind11/numpy.h>

#include <string>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "loss/loss.h"

namespace nnx {
namespace {

struct Targets {
  const int64_t* data;
  int64_t n;
};

Targets class_targets(const py::array& t, int64_t rows, int64_t classes) {
  if (t.dtype().kind() != 'i' || t.itemsize() != 8)
    throw py::type_error("target: expected an int64 array, got " + std::string(py::str(t.dtype())));
  require(t.ndim() == 1 && t.shape(0) == rows, "target: expected shape (" + std::to_string(rows) + ",)");
  // A single row is contiguous whatever its stride (NumPy flags it so and does not copy it).
  require(rows <= 1 || t.strides(0) == 8, "target: expected a C-contiguous array");
  const int64_t* p = static_cast<const int64_t*>(t.data());
  for (int64_t i = 0; i < rows; ++i)
    if (p[i] < 0 || p[i] >= classes)  // the message is only built on failure: this loop runs per row
      throw py::value_error("target: class indices must lie in [0, " + std::to_string(classes) + "), found " +
                            std::to_string(p[i]));
  return {p, rows};
}

template <class V>
void require_matrix(const V& v, const char* name) {
  require(v.ndim == 2, std::string(name) + ": expected a 2-D array");
  require(v.contiguous(), std::string(name) + ": expected a C-contiguous array");
}

double* partials_for(int64_t rows, int64_t cols) {
  return workspace_as<double>(kWsMisc, static_cast<size_t>(loss_num_partials(rows, cols)) + 1);
}

// ---- class-index losses: (N, C) scores + int64 targets ----

template <class T>
double cross_entropy_py(const py::array& z, const py::array& t) {
  auto Z = view_in<T>(z, "logits", 2);
  require_matrix(Z, "logits");
  auto tg = class_targets(t, Z.shape[0], Z.shape[1]);
  double* partials = partials_for(Z.shape[0], Z.shape[1]);
  py::gil_scoped_release release;
  return cross_entropy_sum<T>(Z.data, tg.data, Z.shape[0], Z.shape[1], partials, num_threads());
}

template <class T>
void cross_entropy_backward_py(const py::array& z, const py::array& t, double scale, py::array& out) {
  auto Z = view_in<T>(z, "logits", 2);
  require_matrix(Z, "logits");
  auto D = view_out<T>(out, "out", 2);
  require_same_contiguous(Z, "logits", D, "out");
  auto tg = class_targets(t, Z.shape[0], Z.shape[1]);
  py::gil_scoped_release release;
  cross_entropy_backward<T>(Z.data, tg.data, Z.shape[0], Z.shape[1], static_cast<T>(scale), D.data, num_threads());
}

template <class T>
double hinge_py(const py::array& s, const py::array& t, double margin) {
  auto S = view_in<T>(s, "scores", 2);
  require_matrix(S, "scores");
  auto tg = class_targets(t, S.shape[0], S.shape[1]);
  double* partials = partials_for(S.shape[0], S.shape[1]);
  py::gil_scoped_release release;
  return multiclass_hinge_sum<T>(S.data, tg.data, S.shape[0], S.shape[1], static_cast<T>(margin), partials,
                                 num_threads());
}

template <class T>
void hinge_backward_py(const py::array& s, const py::array& t, double margin, double scale, py::array& out) {
  auto S = view_in<T>(s, "scores", 2);
  require_matrix(S, "scores");
  auto D = view_out<T>(out, "out", 2);
  require_same_contiguous(S, "scores", D, "out");
  auto tg = class_targets(t, S.shape[0], S.shape[1]);
  py::gil_scoped_release release;
  multiclass_hinge_backward<T>(S.data, tg.data, S.shape[0], S.shape[1], static_cast<T>(margin),
                               static_cast<T>(scale), D.data, num_threads());
}

// ---- element-wise losses: prediction and target of one shape ----

template <class T>
double elementwise_py(const py::array& p, const py::array& t, bool bce) {
  auto P = view_in<T>(p, "input");
  auto Tg = view_in<T>(t, "target");
  require_same_contiguous(P, "input", Tg, "target");
  double* partials = partials_for(P.size(), 1);
  py::gil_scoped_release release;
  return bce ? bce_with_logits_sum<T>(P.data, Tg.data, P.size(), partials, num_threads())
             : mse_sum<T>(P.data, Tg.data, P.size(), partials, num_threads());
}

template <class T>
void elementwise_backward_py(const py::array& p, const py::array& t, double scale, py::array& out, bool bce) {
  auto P = view_in<T>(p, "input");
  auto Tg = view_in<T>(t, "target");
  auto D = view_out<T>(out, "out");
  require_same_contiguous(P, "input", Tg, "target");
  require_same_contiguous(P, "input", D, "out");
  py::gil_scoped_release release;
  if (bce) bce_with_logits_backward<T>(P.data, Tg.data, P.size(), static_cast<T>(scale), D.data, num_threads());
  else mse_backward<T>(P.data, Tg.data, P.size(), static_cast<T>(scale), D.data, num_threads());
}

}  // namespace

void bind_loss(py::module_& m) {
  m.def("cross_entropy_sum", [](const py::array& z, const py::array& t) {
          return is_f32(z) ? cross_entropy_py<float>(z, t) : cross_entropy_py<double>(z, t);
        },
        py::arg("logits"), py::arg("target"), "Sum over rows of -log_softmax(logits)[i, target[i]] (double).");
  m.def("cross_entropy_backward", [](const py::array& z, const py::array& t, double scale, py::array& out) {
          if (is_f32(z)) cross_entropy_backward_py<float>(z, t, scale, out);
          else cross_entropy_backward_py<double>(z, t, scale, out);
        },
        py::arg("logits"), py::arg("target"), py::arg("scale"), py::arg("out"),
        "out = scale * (softmax(logits) - onehot(target)).");
  m.def("multiclass_hinge_sum", [](const py::array& s, const py::array& t, double margin) {
          return is_f32(s) ? hinge_py<float>(s, t, margin) : hinge_py<double>(s, t, margin);
        },
        py::arg("scores"), py::arg("target"), py::arg("margin"));
  m.def("multiclass_hinge_backward",
        [](const py::array& s, const py::array& t, double margin, double scale, py::array& out) {
          if (is_f32(s)) hinge_backward_py<float>(s, t, margin, scale, out);
          else hinge_backward_py<double>(s, t, margin, scale, out);
        },
        py::arg("scores"), py::arg("target"), py::arg("margin"), py::arg("scale"), py::arg("out"));
  m.def("mse_sum", [](const py::array& p, const py::array& t) {
          return is_f32(p) ? elementwise_py<float>(p, t, false) : elementwise_py<double>(p, t, false);
        },
        py::arg("input"), py::arg("target"));
  m.def("mse_backward", [](const py::array& p, const py::array& t, double scale, py::array& out) {
          if (is_f32(p)) elementwise_backward_py<float>(p, t, scale, out, false);
          else elementwise_backward_py<double>(p, t, scale, out, false);
        },
        py::arg("input"), py::arg("target"), py::arg("scale"), py::arg("out"), "out = scale * 2 (input - target).");
  m.def("bce_with_logits_sum", [](const py::array& p, const py::array& t) {
          return is_f32(p) ? elementwise_py<float>(p, t, true) : elementwise_py<double>(p, t, true);
        },
        py::arg("input"), py::arg("target"));
  m.def("bce_with_logits_backward", [](const py::array& p, const py::array& t, double scale, py::array& out) {
          if (is_f32(p)) elementwise_backward_py<float>(p, t, scale, out, true);
          else elementwise_backward_py<double>(p, t, scale, out, true);
        },
        py::arg("input"), py::arg("target"), py::arg("scale"), py::arg("out"), "out = scale * (sigmoid(input) - target).");
}

}  // namespace nnx
