// Bindings of the loss family. The ops layer (python/nnx/ops/loss.py) has validated dtypes, shapes and
// class indices; the checks here (including the class-index range, which a kernel would otherwise use
// as an address) keep a direct call of nnx._C from crashing.
#include <pybind11/numpy.h>

#include <string>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
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
  NNX_REQUIRE(t.ndim() == 1 && t.shape(0) == rows, "target: expected shape (" + std::to_string(rows) + ",)");
  // A single row is contiguous whatever its stride (NumPy flags it so and does not copy it).
  NNX_REQUIRE(rows <= 1 || t.strides(0) == 8, "target: expected a C-contiguous array");
  return {static_cast<const int64_t*>(t.data()), rows};
}

// Run by each kernel call itself (not by the binding), so a replayed step checks the targets it is given.
// Throws without touching Python: it may run without the GIL.
void check_class_range(const int64_t* p, int64_t rows, int64_t classes) {
  for (int64_t i = 0; i < rows; ++i)
    if (p[i] < 0 || p[i] >= classes)  // the message is only built on failure: this loop runs per row
      throw py::value_error("target: class indices must lie in [0, " + std::to_string(classes) + "), found " +
                            std::to_string(p[i]));
}

// The one-element array a reduced loss is written to, as (T)(sum / divisor).
template <class T>
T* scalar_out(const py::object& out) {
  py::array a = py::cast<py::array>(out);
  auto v = view_out<T>(a, "out");
  NNX_REQUIRE(v.size() == 1, "out: expected a one-element array for the reduced loss");
  return v.data;
}

template <class V>
void require_matrix(const V& v, const char* name) {
  NNX_REQUIRE(v.ndim == 2, std::string(name) + ": expected a 2-D array");
  NNX_REQUIRE(v.contiguous(), std::string(name) + ": expected a C-contiguous array");
}

double* partials_for(int64_t rows, int64_t cols) {
  return workspace_as<double>(kWsMisc, static_cast<size_t>(loss_num_partials(rows, cols)) + 1);
}

// ---- class-index losses: (N, C) scores + int64 targets ----

// A reduced loss: `sum(nt)` computes the sum. With out=None it is returned to Python (a capture cannot replay
// that); otherwise (T)(sum / divisor) is written to out, and the call can be replayed.
template <class T, class Sum>
py::object reduce_into(const char* op, std::initializer_list<ArrayUse> arrays, const py::object& out, double divisor,
                       Sum sum) {
  if (out.is_none()) {
    refuse_capture(std::string(op) + " returned the loss to Python (call it with out= to capture it)");
    double total;
    {
      py::gil_scoped_release release;
      total = sum(num_threads());
    }
    return py::float_(total);
  }
  T* po = scalar_out<T>(out);
  std::vector<ArrayUse> uses(arrays);
  uses.push_back({out, Use::write});
  run_kernel(op, uses, {divisor}, [=](int nt) { *po = static_cast<T>(sum(nt) / divisor); });
  return py::none();
}

template <class T>
py::object cross_entropy_py(const py::array& z, const py::array& t, const py::object& out, double divisor) {
  auto Z = view_in<T>(z, "logits", 2);
  require_matrix(Z, "logits");
  auto tg = class_targets(t, Z.shape[0], Z.shape[1]);
  const T* pz = Z.data;
  const int64_t* pt = tg.data;
  const int64_t rows = Z.shape[0], cols = Z.shape[1];
  return reduce_into<T>("cross_entropy_sum", {{z, Use::read}, {t, Use::read}}, out, divisor, [=](int nt) {
    check_class_range(pt, rows, cols);
    return cross_entropy_sum<T>(pz, pt, rows, cols, partials_for(rows, cols), nt);
  });
}

template <class T>
void cross_entropy_backward_py(const py::array& z, const py::array& t, double scale, py::array& out) {
  auto Z = view_in<T>(z, "logits", 2);
  require_matrix(Z, "logits");
  auto D = view_out<T>(out, "out", 2);
  require_same_contiguous(Z, "logits", D, "out");
  auto tg = class_targets(t, Z.shape[0], Z.shape[1]);
  const T* pz = Z.data;
  const int64_t* pt = tg.data;
  T* pd = D.data;
  const int64_t rows = Z.shape[0], cols = Z.shape[1];
  const T sc = static_cast<T>(scale);
  run_kernel("cross_entropy_backward", {{z, Use::read}, {t, Use::read}, {out, Use::write}}, {scale}, [=](int nt) {
    check_class_range(pt, rows, cols);
    cross_entropy_backward<T>(pz, pt, rows, cols, sc, pd, nt);
  });
}

template <class T>
py::object hinge_py(const py::array& s, const py::array& t, double margin, const py::object& out, double divisor) {
  auto S = view_in<T>(s, "scores", 2);
  require_matrix(S, "scores");
  auto tg = class_targets(t, S.shape[0], S.shape[1]);
  const T* ps = S.data;
  const int64_t* pt = tg.data;
  const int64_t rows = S.shape[0], cols = S.shape[1];
  const T mg = static_cast<T>(margin);
  return reduce_into<T>("multiclass_hinge_sum", {{s, Use::read}, {t, Use::read}}, out, divisor, [=](int nt) {
    check_class_range(pt, rows, cols);
    return multiclass_hinge_sum<T>(ps, pt, rows, cols, mg, partials_for(rows, cols), nt);
  });
}

template <class T>
void hinge_backward_py(const py::array& s, const py::array& t, double margin, double scale, py::array& out) {
  auto S = view_in<T>(s, "scores", 2);
  require_matrix(S, "scores");
  auto D = view_out<T>(out, "out", 2);
  require_same_contiguous(S, "scores", D, "out");
  auto tg = class_targets(t, S.shape[0], S.shape[1]);
  const T* ps = S.data;
  const int64_t* pt = tg.data;
  T* pd = D.data;
  const int64_t rows = S.shape[0], cols = S.shape[1];
  const T mg = static_cast<T>(margin), sc = static_cast<T>(scale);
  run_kernel("multiclass_hinge_backward", {{s, Use::read}, {t, Use::read}, {out, Use::write}}, {margin, scale},
             [=](int nt) {
               check_class_range(pt, rows, cols);
               multiclass_hinge_backward<T>(ps, pt, rows, cols, mg, sc, pd, nt);
             });
}

// ---- element-wise losses: prediction and target of one shape ----

template <class T>
py::object elementwise_py(const py::array& p, const py::array& t, bool bce, const py::object& out, double divisor) {
  auto P = view_in<T>(p, "input");
  auto Tg = view_in<T>(t, "target");
  require_same_contiguous(P, "input", Tg, "target");
  const T *pp = P.data, *pt = Tg.data;
  const int64_t n = P.size();
  return reduce_into<T>(bce ? "bce_with_logits_sum" : "mse_sum", {{p, Use::read}, {t, Use::read}}, out, divisor,
                        [=](int nt) {
                          double* partials = partials_for(n, 1);
                          return bce ? bce_with_logits_sum<T>(pp, pt, n, partials, nt)
                                     : mse_sum<T>(pp, pt, n, partials, nt);
                        });
}

// The sum of all of x's elements (C-contiguous, any shape): Tensor.sum and mean of a whole tensor.
template <class T>
py::object sum_elements_py(const py::array& x, const py::object& out, double divisor) {
  auto X = view_in<T>(x, "x", -1);
  NNX_REQUIRE(X.contiguous(), "x: expected a C-contiguous array");
  const T* px = X.data;
  const int64_t n = X.size();
  return reduce_into<T>("sum_elements", {{x, Use::read}}, out, divisor,
                        [=](int nt) { return sum_elements<T>(px, n, partials_for(n, 1), nt); });
}

template <class T>
void elementwise_backward_py(const py::array& p, const py::array& t, double scale, py::array& out, bool bce) {
  auto P = view_in<T>(p, "input");
  auto Tg = view_in<T>(t, "target");
  auto D = view_out<T>(out, "out");
  require_same_contiguous(P, "input", Tg, "target");
  require_same_contiguous(P, "input", D, "out");
  const T *pp = P.data, *pt = Tg.data;
  T* pd = D.data;
  const int64_t n = P.size();
  const T sc = static_cast<T>(scale);
  run_kernel(bce ? "bce_with_logits_backward" : "mse_backward", {{p, Use::read}, {t, Use::read}, {out, Use::write}},
             {scale}, [=](int nt) {
               if (bce) bce_with_logits_backward<T>(pp, pt, n, sc, pd, nt);
               else mse_backward<T>(pp, pt, n, sc, pd, nt);
             });
}

}  // namespace

void bind_loss(py::module_& m) {
  // The reduced losses return the sum (a float) when out is None; with `out` (a one-element array of the
  // input's dtype) they write (T)(sum / divisor) there instead and return None, which nnx.compile can replay.
  m.def("cross_entropy_sum", [](const py::array& z, const py::array& t, const py::object& out, double divisor) {
          return is_f32(z) ? cross_entropy_py<float>(z, t, out, divisor) : cross_entropy_py<double>(z, t, out, divisor);
        },
        py::arg("logits"), py::arg("target"), py::arg("out") = py::none(), py::arg("divisor") = 1.0,
        "Sum over rows of -log_softmax(logits)[i, target[i]] (double), or (T)(sum / divisor) written to out.");
  m.def("cross_entropy_backward", [](const py::array& z, const py::array& t, double scale, py::array& out) {
          if (is_f32(z)) cross_entropy_backward_py<float>(z, t, scale, out);
          else cross_entropy_backward_py<double>(z, t, scale, out);
        },
        py::arg("logits"), py::arg("target"), py::arg("scale"), py::arg("out"),
        "out = scale * (softmax(logits) - onehot(target)).");
  m.def("multiclass_hinge_sum", [](const py::array& s, const py::array& t, double margin, const py::object& out,
                                   double divisor) {
          return is_f32(s) ? hinge_py<float>(s, t, margin, out, divisor) : hinge_py<double>(s, t, margin, out, divisor);
        },
        py::arg("scores"), py::arg("target"), py::arg("margin"), py::arg("out") = py::none(), py::arg("divisor") = 1.0);
  m.def("multiclass_hinge_backward",
        [](const py::array& s, const py::array& t, double margin, double scale, py::array& out) {
          if (is_f32(s)) hinge_backward_py<float>(s, t, margin, scale, out);
          else hinge_backward_py<double>(s, t, margin, scale, out);
        },
        py::arg("scores"), py::arg("target"), py::arg("margin"), py::arg("scale"), py::arg("out"));
  m.def("mse_sum", [](const py::array& p, const py::array& t, const py::object& out, double divisor) {
          return is_f32(p) ? elementwise_py<float>(p, t, false, out, divisor)
                           : elementwise_py<double>(p, t, false, out, divisor);
        },
        py::arg("input"), py::arg("target"), py::arg("out") = py::none(), py::arg("divisor") = 1.0);
  m.def("mse_backward", [](const py::array& p, const py::array& t, double scale, py::array& out) {
          if (is_f32(p)) elementwise_backward_py<float>(p, t, scale, out, false);
          else elementwise_backward_py<double>(p, t, scale, out, false);
        },
        py::arg("input"), py::arg("target"), py::arg("scale"), py::arg("out"), "out = scale * 2 (input - target).");
  m.def("sum_elements", [](const py::array& x, const py::object& out, double divisor) {
          return is_f32(x) ? sum_elements_py<float>(x, out, divisor) : sum_elements_py<double>(x, out, divisor);
        },
        py::arg("x"), py::arg("out") = py::none(), py::arg("divisor") = 1.0,
        "Sum of all elements of a C-contiguous float array (double), or (T)(sum / divisor) written to out.");
  m.def("bce_with_logits_sum", [](const py::array& p, const py::array& t, const py::object& out, double divisor) {
          return is_f32(p) ? elementwise_py<float>(p, t, true, out, divisor)
                           : elementwise_py<double>(p, t, true, out, divisor);
        },
        py::arg("input"), py::arg("target"), py::arg("out") = py::none(), py::arg("divisor") = 1.0);
  m.def("bce_with_logits_backward", [](const py::array& p, const py::array& t, double scale, py::array& out) {
          if (is_f32(p)) elementwise_backward_py<float>(p, t, scale, out, true);
          else elementwise_backward_py<double>(p, t, scale, out, true);
        },
        py::arg("input"), py::arg("target"), py::arg("scale"), py::arg("out"), "out = scale * (sigmoid(input) - target).");
}

}  // namespace nnx
