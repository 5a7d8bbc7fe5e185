// Bindings of the normalization family. The ops layer (python/nnx/ops/norm.py) has already checked
// dtypes and shapes, made the arrays C-contiguous and viewed x as (N, C, S) or (R, D); these checks only
// keep a wrong call from reaching a kernel with a bad pointer.
#include <pybind11/numpy.h>

#include <string>
#include <vector>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "norm/norm.h"

namespace nnx {
namespace {

template <class V>
void require_shape(const V& v, const char* name, std::initializer_list<int64_t> shape) {
  NNX_REQUIRE(v.contiguous(), std::string(name) + ": expected a C-contiguous array");
  bool ok = v.ndim == static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) ok = ok && v.shape[i++] == s;
  if (ok) return;
  std::string want = "(";
  for (int64_t s : shape) want += std::to_string(s) + ",";
  throw py::value_error(std::string(name) + ": expected shape " + want + ")");
}

// A per-channel (or per-row) vector of n values: None -> nullptr.
template <class T>
const T* vec_in(const py::object& o, const char* name, int64_t n) {
  if (o.is_none()) return nullptr;
  auto v = view_in<T>(py::cast<py::array>(o), name, 1);
  require_shape(v, name, {n});
  return v.data;
}

template <class T>
T* vec_out(const py::object& o, const char* name, int64_t n) {
  if (o.is_none()) return nullptr;
  py::array a = py::cast<py::array>(o);
  auto v = view_out<T>(a, name, 1);
  require_shape(v, name, {n});
  return v.data;
}

template <class T>
T* arr_out(const py::object& o, const char* name, const View<const T>& like) {
  if (o.is_none()) return nullptr;
  py::array a = py::cast<py::array>(o);
  auto v = view_out<T>(a, name, like.ndim);
  for (int i = 0; i < like.ndim; ++i) NNX_REQUIRE(v.shape[i] == like.shape[i],
                                                  std::string(name) + ": expected the shape of x");
  return v.data;
}

// The running statistics' momentum: a float, or a one-element float64 array read when the kernel runs (a
// captured step whose momentum changes from call to call, momentum=None's 1 / num_batches_tracked, refreshes
// it before each replay).
struct Momentum {
  double value = 0;
  const double* at = nullptr;
  double get() const { return at != nullptr ? *at : value; }
};

Momentum momentum_of(const py::object& o) {
  Momentum m;
  if (py::isinstance<py::array>(o)) {
    py::array a = py::cast<py::array>(o);
    NNX_REQUIRE(a.dtype().kind() == 'f' && a.itemsize() == 8 && a.size() == 1 && a.ndim() == 1,
                "momentum: expected a float or a one-element float64 array");
    m.at = static_cast<const double*>(a.data());
  } else {
    m.value = py::cast<double>(o);
  }
  return m;
}

template <class T>
void bn_forward_py(const py::array& x, const py::object& y, const py::object& weight, const py::object& bias,
                   const py::object& running_mean, const py::object& running_var, bool training,
                   const py::object& momentum, double eps, bool relu, const py::object& mean, const py::object& invstd) {
  auto X = view_in<T>(x, "x", 3);
  NNX_REQUIRE(X.contiguous(), "x: expected a C-contiguous array");
  const int64_t N = X.shape[0], C = X.shape[1], S = X.shape[2];
  NNX_REQUIRE(!training || N * S > 1, "x: batch norm in training needs more than 1 value per channel");
  NNX_REQUIRE(training || (!running_mean.is_none() && !running_var.is_none()),
              "running_mean: evaluation mode needs running_mean and running_var");
  T* Y = arr_out<T>(y, "y", X);
  NNX_REQUIRE(Y != nullptr, "y: expected an output array");
  const T* w = vec_in<T>(weight, "weight", C);
  const T* b = vec_in<T>(bias, "bias", C);
  T* rm = vec_out<T>(running_mean, "running_mean", C);
  T* rv = vec_out<T>(running_var, "running_var", C);
  T* m = vec_out<T>(mean, "mean", C);
  T* is = vec_out<T>(invstd, "invstd", C);
  NNX_REQUIRE(m != nullptr && is != nullptr, "mean: expected output arrays for mean and invstd");
  const Momentum mom = momentum_of(momentum);
  const T* px = X.data;
  const Use stats = training ? Use::update : Use::read;
  std::vector<double> attrs{double(N), double(C), double(S), double(training), eps, double(relu)};
  if (mom.at == nullptr) attrs.push_back(mom.value);
  run_kernel("batch_norm",
             {{x, Use::read}, {weight, Use::read}, {bias, Use::read}, {running_mean, stats}, {running_var, stats},
              {mom.at != nullptr ? momentum : py::none(), Use::read}, {y, Use::write}, {mean, Use::write},
              {invstd, Use::write}},
             std::move(attrs), [=](int nt) {
               batch_norm_forward<T>(px, Y, N, C, S, w, b, rm, rv, training, mom.get(), eps, relu, m, is, nt);
             });
}

template <class T>
void bn_backward_py(const py::array& dy, const py::array& x, const py::object& y, const py::object& dx,
                    const py::object& weight, const py::array& mean, const py::array& invstd, bool training,
                    const py::object& dweight, const py::object& dbias) {
  auto X = view_in<T>(x, "x", 3);
  auto G = view_in<T>(dy, "dy", 3);
  const int64_t N = X.shape[0], C = X.shape[1], S = X.shape[2];
  require_shape(X, "x", {N, C, S});
  require_shape(G, "dy", {N, C, S});
  const T* Y = nullptr;
  if (!y.is_none()) {
    auto Yv = view_in<T>(py::cast<py::array>(y), "y", 3);
    require_shape(Yv, "y", {N, C, S});
    Y = Yv.data;
  }
  T* DX = arr_out<T>(dx, "dx", X);
  const T* w = vec_in<T>(weight, "weight", C);
  const T* m = vec_in<T>(mean, "mean", C);
  const T* is = vec_in<T>(invstd, "invstd", C);
  T* dw = vec_out<T>(dweight, "dweight", C);
  T* db = vec_out<T>(dbias, "dbias", C);
  const T *pg = G.data, *px = X.data;
  run_kernel("batch_norm_backward",
             {{dy, Use::read}, {x, Use::read}, {y, Use::read}, {weight, Use::read}, {mean, Use::read},
              {invstd, Use::read}, {dx, Use::write}, {dweight, Use::write}, {dbias, Use::write}},
             {double(N), double(C), double(S), double(training)},
             [=](int nt) { batch_norm_backward<T>(pg, px, Y, DX, N, C, S, w, m, is, training, dw, db, nt); });
}

template <class T>
void ln_forward_py(const py::array& x, const py::object& y, const py::object& weight, const py::object& bias,
                   double eps, const py::object& mean, const py::object& invstd) {
  auto X = view_in<T>(x, "x", 2);
  const int64_t R = X.shape[0], D = X.shape[1];
  require_shape(X, "x", {R, D});
  T* Y = arr_out<T>(y, "y", X);
  NNX_REQUIRE(Y != nullptr, "y: expected an output array");
  const T* w = vec_in<T>(weight, "weight", D);
  const T* b = vec_in<T>(bias, "bias", D);
  T* m = vec_out<T>(mean, "mean", R);
  T* is = vec_out<T>(invstd, "invstd", R);
  NNX_REQUIRE(m != nullptr && is != nullptr, "mean: expected output arrays for mean and invstd");
  const T* px = X.data;
  run_kernel("layer_norm",
             {{x, Use::read}, {weight, Use::read}, {bias, Use::read}, {y, Use::write}, {mean, Use::write},
              {invstd, Use::write}},
             {double(R), double(D), eps}, [=](int nt) { layer_norm_forward<T>(px, Y, R, D, w, b, eps, m, is, nt); });
}

template <class T>
void ln_backward_py(const py::array& dy, const py::array& x, const py::object& dx, const py::object& weight,
                    const py::array& mean, const py::array& invstd, const py::object& dweight,
                    const py::object& dbias) {
  auto X = view_in<T>(x, "x", 2);
  auto G = view_in<T>(dy, "dy", 2);
  const int64_t R = X.shape[0], D = X.shape[1];
  require_shape(X, "x", {R, D});
  // dy (R, D), or one row (1, D) for every row of x (layer_norm_backward's ldy = 0).
  const int64_t ldy = G.ndim == 2 && G.shape[0] == 1 && R != 1 ? 0 : D;
  require_shape(G, "dy", {ldy == 0 ? 1 : R, D});
  T* DX = arr_out<T>(dx, "dx", X);
  const T* w = vec_in<T>(weight, "weight", D);
  const T* m = vec_in<T>(mean, "mean", R);
  const T* is = vec_in<T>(invstd, "invstd", R);
  T* dw = vec_out<T>(dweight, "dweight", D);
  T* db = vec_out<T>(dbias, "dbias", D);
  const T *pg = G.data, *px = X.data;
  run_kernel("layer_norm_backward",
             {{dy, Use::read}, {x, Use::read}, {weight, Use::read}, {mean, Use::read}, {invstd, Use::read},
              {dx, Use::write}, {dweight, Use::write}, {dbias, Use::write}},
             {double(R), double(D)}, [=](int nt) { layer_norm_backward<T>(pg, ldy, px, DX, R, D, w, m, is, dw, db, nt); });
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("batch_norm",
        [](const py::array& x, const py::object& y, const py::object& weight, const py::object& bias,
           const py::object& running_mean, const py::object& running_var, bool training,
           const py::object& momentum, double eps, bool relu, const py::object& mean, const py::object& invstd) {
          if (is_f32(x)) bn_forward_py<float>(x, y, weight, bias, running_mean, running_var, training, momentum, eps, relu, mean, invstd);
          else bn_forward_py<double>(x, y, weight, bias, running_mean, running_var, training, momentum, eps, relu, mean, invstd);
        },
        py::arg("x"), py::arg("y"), py::arg("weight"), py::arg("bias"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("training"), py::arg("momentum"), py::arg("eps"), py::arg("relu"),
        py::arg("mean"), py::arg("invstd"),
        "y = [relu](batch_norm(x)) for x (N, C, S); writes mean/invstd (C,), updates the running stats in training.");
  m.def("batch_norm_backward",
        [](const py::array& dy, const py::array& x, const py::object& y, const py::object& dx,
           const py::object& weight, const py::array& mean, const py::array& invstd, bool training,
           const py::object& dweight, const py::object& dbias) {
          if (is_f32(x)) bn_backward_py<float>(dy, x, y, dx, weight, mean, invstd, training, dweight, dbias);
          else bn_backward_py<double>(dy, x, y, dx, weight, mean, invstd, training, dweight, dbias);
        },
        py::arg("dy"), py::arg("x"), py::arg("y"), py::arg("dx"), py::arg("weight"), py::arg("mean"),
        py::arg("invstd"), py::arg("training"), py::arg("dweight"), py::arg("dbias"),
        "Writes the requested gradients (dx, dweight, dbias may be None) of batch_norm; y masks a fused ReLU.");
  m.def("layer_norm",
        [](const py::array& x, const py::object& y, const py::object& weight, const py::object& bias, double eps,
           const py::object& mean, const py::object& invstd) {
          if (is_f32(x)) ln_forward_py<float>(x, y, weight, bias, eps, mean, invstd);
          else ln_forward_py<double>(x, y, weight, bias, eps, mean, invstd);
        },
        py::arg("x"), py::arg("y"), py::arg("weight"), py::arg("bias"), py::arg("eps"), py::arg("mean"),
        py::arg("invstd"), "y = layer_norm(x) over the rows of x (R, D); writes mean/invstd (R,).");
  m.def("layer_norm_backward",
        [](const py::array& dy, const py::array& x, const py::object& dx, const py::object& weight,
           const py::array& mean, const py::array& invstd, const py::object& dweight, const py::object& dbias) {
          if (is_f32(x)) ln_backward_py<float>(dy, x, dx, weight, mean, invstd, dweight, dbias);
          else ln_backward_py<double>(dy, x, dx, weight, mean, invstd, dweight, dbias);
        },
        py::arg("dy"), py::arg("x"), py::arg("dx"), py::arg("weight"), py::arg("mean"), py::arg("invstd"),
        py::arg("dweight"), py::arg("dbias"), "Writes the requested gradients of layer_norm (each may be None).");
  m.def("norm_ukernel_name", [](bool f32) {
          return std::string(f32 ? norm_ukernel_name<float>() : norm_ukernel_name<double>());
        },
        py::arg("f32") = true, "Name of the normalization micro-kernel set the active ISA uses.");
}

}  // namespace nnx
