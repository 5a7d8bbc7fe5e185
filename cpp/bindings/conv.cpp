#include <pybind11/stl.h>

#include <array>
#include <string>
#include <utility>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "conv/conv.h"

namespace nnx {
namespace {

using Pair = std::pair<int64_t, int64_t>;

std::string shape_str(const int64_t* s, int n) {
  std::string r = "(";
  for (int i = 0; i < n; ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (n == 1 ? ",)" : ")");
}

// Checks every size the kernels rely on and returns the geometry; raises ValueError otherwise.
ConvGeom make_geom(const int64_t* xs, const int64_t* ws, Pair stride, Pair padding, Pair dilation,
                   int64_t groups) {
  // Below 2^30 (as nnx.ops checks): keeps H + 2 * padding and dilation * (R - 1) + 1 inside int64 for any
  // R, H of an array that fits in memory, and the kernels' index arithmetic with them.
  const int64_t lim = int64_t(1) << 30;
  require(stride.first >= 1 && stride.second >= 1, "stride: expected values >= 1");
  require(padding.first >= 0 && padding.second >= 0, "padding: expected values >= 0");
  require(dilation.first >= 1 && dilation.second >= 1, "dilation: expected values >= 1");
  require(stride.first <= lim && stride.second <= lim, "stride: expected values <= 2^30");
  require(padding.first <= lim && padding.second <= lim, "padding: expected values <= 2^30");
  require(dilation.first <= lim && dilation.second <= lim, "dilation: expected values <= 2^30");
  // Dimensions below 2^32 and element counts below 2^62 (real arrays are far smaller; conv2d_algorithm
  // takes bare shapes): with the limits above, no size product in the geometry or the kernels wraps.
  double xn = 1, wn = 1;
  for (int i = 0; i < 4; ++i) {
    require(xs[i] >= 0 && xs[i] < (lim << 2), "x: dimensions must lie in [0, 2^32), got " + shape_str(xs, 4));
    require(ws[i] >= 0 && ws[i] < (lim << 2), "w: dimensions must lie in [0, 2^32), got " + shape_str(ws, 4));
    xn *= static_cast<double>(xs[i]);
    wn *= static_cast<double>(ws[i]);
  }
  require(xn < 0x1p62, "x: more than 2^62 elements in " + shape_str(xs, 4));
  require(wn < 0x1p62, "w: more than 2^62 elements in " + shape_str(ws, 4));
  require(groups >= 1, "groups: expected an int >= 1");
  ConvGeom g{};
  g.N = xs[0], g.C = xs[1], g.H = xs[2], g.W = xs[3];
  g.K = ws[0], g.R = ws[2], g.S = ws[3];
  g.sh = stride.first, g.sw = stride.second, g.ph = padding.first, g.pw = padding.second;
  g.dh = dilation.first, g.dw = dilation.second, g.groups = groups;
  require(g.C >= 1 && g.H >= 1 && g.W >= 1, "x: expected C, H, W >= 1, got " + shape_str(xs, 4));
  require(g.C % groups == 0, "groups: " + std::to_string(groups) + " does not divide C = " + std::to_string(g.C));
  require(g.K >= 1 && g.K % groups == 0 && ws[1] == g.C / groups && g.R >= 1 && g.S >= 1,
          "w: expected shape (K, " + std::to_string(g.C / groups) + ", R, S) with K a multiple of groups=" +
              std::to_string(groups) + ", got " + shape_str(ws, 4));
  int64_t eh = g.dh * (g.R - 1) + 1, ew = g.dw * (g.S - 1) + 1;
  require(eh <= g.H + 2 * g.ph && ew <= g.W + 2 * g.pw,
          "w: the dilated kernel " + std::to_string(eh) + "x" + std::to_string(ew) +
              " is larger than the padded input " + std::to_string(g.H + 2 * g.ph) + "x" +
              std::to_string(g.W + 2 * g.pw));
  g.P = (g.H + 2 * g.ph - eh) / g.sh + 1;
  g.Q = (g.W + 2 * g.pw - ew) / g.sw + 1;
  return g;
}

ConvAlgo parse_algo(const std::string& name, const ConvGeom& g) {
  ConvAlgo a;
  if (!conv_algo_parse(name, &a))
    throw py::value_error("algorithm: expected one of 'auto', 'gemm1x1', 'im2col', 'direct', 'depthwise', 'implicit', got '" +
                          name + "'");
  std::string why;
  if (!conv_algo_applies(a, g, &why))
    throw py::value_error("algorithm: '" + name + "' needs " + why);
  return a;
}

template <class V>
void require_contiguous(const V& v, const char* name) {
  require(v.contiguous(), std::string(name) + ": expected a C-contiguous array");
}

Act act_of(int act) {
  require(act >= 0 && act <= 4, "activation: unknown activation code " + std::to_string(act));
  return static_cast<Act>(act);
}

template <class T>
void forward_py(const py::array& x, const py::array& w, const py::object& b, py::array& y, Pair stride,
                Pair padding, Pair dilation, int64_t groups, int act, double slope, const std::string& algo) {
  auto X = view_in<T>(x, "x", 4);
  auto Wt = view_in<T>(w, "w", 4);
  auto B = view_opt<T>(b, "b", 1);
  auto Y = view_out<T>(y, "out", 4);
  require_contiguous(X, "x");
  require_contiguous(Wt, "w");
  ConvGeom g = make_geom(X.shape, Wt.shape, stride, padding, dilation, groups);
  ConvAlgo a = parse_algo(algo, g);
  if (B.data) {
    require(B.shape[0] == g.K, "b: expected shape (" + std::to_string(g.K) + ",)");
    require_contiguous(B, "b");
  }
  const int64_t ys[4] = {g.N, g.K, g.P, g.Q};
  for (int i = 0; i < 4; ++i) require(Y.shape[i] == ys[i], "out: expected shape " + shape_str(ys, 4));
  Act ac = act_of(act);
  const T *px = X.data, *pw = Wt.data, *pb = B.data;
  T* py_ = Y.data;
  const T sl = static_cast<T>(slope);
  run_kernel("conv2d", {{x, Use::read}, {w, Use::read}, {b, Use::read}, {y, Use::write}},
             {double(stride.first), double(stride.second), double(padding.first), double(padding.second),
              double(dilation.first), double(dilation.second), double(groups), double(act), slope, double(a)},
             [=](int nt) { conv2d_forward<T>(g, px, pw, pb, py_, ac, sl, a, nt); });
}

template <class T>
void backward_py(const py::array& dy, const py::array& x, const py::array& w, const py::object& y,
                 const py::object& dx, const py::object& dw, const py::object& db, Pair stride, Pair padding,
                 Pair dilation, int64_t groups, int act, double slope, const std::string& algo) {
  auto DY = view_in<T>(dy, "dy", 4);
  auto X = view_in<T>(x, "x", 4);
  auto Wt = view_in<T>(w, "w", 4);
  auto Yv = view_opt<T>(y, "y", 4);
  require_contiguous(DY, "dy");
  require_contiguous(X, "x");
  require_contiguous(Wt, "w");
  ConvGeom g = make_geom(X.shape, Wt.shape, stride, padding, dilation, groups);
  ConvAlgo a = parse_algo(algo, g);
  const int64_t ys[4] = {g.N, g.K, g.P, g.Q};
  for (int i = 0; i < 4; ++i) require(DY.shape[i] == ys[i], "dy: expected shape " + shape_str(ys, 4));
  Act ac = act_of(act);
  if (ac != Act::none) {
    require(!y.is_none(), "y: conv2d_backward with an activation needs the forward output y");
    require_contiguous(Yv, "y");
    for (int i = 0; i < 4; ++i) require(Yv.shape[i] == ys[i], "y: expected shape " + shape_str(ys, 4));
  }
  T* pdx = nullptr;
  T* pdw = nullptr;
  T* pdb = nullptr;
  py::array adx, adw, adb;
  if (!dx.is_none()) {
    adx = py::cast<py::array>(dx);
    auto v = view_out<T>(adx, "dx", 4);
    for (int i = 0; i < 4; ++i) require(v.shape[i] == X.shape[i], "dx: expected the shape of x");
    pdx = v.data;
  }
  if (!dw.is_none()) {
    adw = py::cast<py::array>(dw);
    auto v = view_out<T>(adw, "dw", 4);
    for (int i = 0; i < 4; ++i) require(v.shape[i] == Wt.shape[i], "dw: expected the shape of w");
    pdw = v.data;
  }
  if (!db.is_none()) {
    adb = py::cast<py::array>(db);
    auto v = view_out<T>(adb, "db", 1);
    require(v.shape[0] == g.K, "db: expected shape (K,)");
    pdb = v.data;
  }
  const T* py_ = ac == Act::none ? nullptr : Yv.data;
  const T *pdy = DY.data, *px = X.data, *pw = Wt.data;
  const T sl = static_cast<T>(slope);
  run_kernel("conv2d_backward",
             {{dy, Use::read}, {x, Use::read}, {w, Use::read}, {ac == Act::none ? py::handle() : py::handle(y), Use::read},
              {dx, Use::write}, {dw, Use::write}, {db, Use::write}},
             {double(stride.first), double(stride.second), double(padding.first), double(padding.second),
              double(dilation.first), double(dilation.second), double(groups), double(act), slope, double(a)},
             [=](int nt) { conv2d_backward<T>(g, pdy, px, pw, py_, ac, sl, pdx, pdw, pdb, a, nt); });
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d",
        [](const py::array& x, const py::array& w, const py::object& b, py::array& out, Pair stride, Pair padding,
           Pair dilation, int64_t groups, int act, double slope, const std::string& algo) {
          if (is_f32(x)) forward_py<float>(x, w, b, out, stride, padding, dilation, groups, act, slope, algo);
          else forward_py<double>(x, w, b, out, stride, padding, dilation, groups, act, slope, algo);
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("out"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("act") = 0, py::arg("slope") = 0.01,
        py::arg("algorithm") = "auto",
        "out = act(conv2d(x, w) + b); all arrays C-contiguous, out preallocated (N, K, P, Q).");
  m.def("conv2d_backward",
        [](const py::array& dy, const py::array& x, const py::array& w, const py::object& y, const py::object& dx,
           const py::object& dw, const py::object& db, Pair stride, Pair padding, Pair dilation, int64_t groups,
           int act, double slope, const std::string& algo) {
          if (is_f32(x))
            backward_py<float>(dy, x, w, y, dx, dw, db, stride, padding, dilation, groups, act, slope, algo);
          else
            backward_py<double>(dy, x, w, y, dx, dw, db, stride, padding, dilation, groups, act, slope, algo);
        },
        py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("y"), py::arg("dx"), py::arg("dw"), py::arg("db"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("act") = 0,
        py::arg("slope") = 0.01, py::arg("algorithm") = "auto",
        "Writes the requested gradients (dx, dw, db may be None) of conv2d into preallocated arrays.");
  m.def("conv2d_algorithm",
        [](std::array<int64_t, 4> xs, std::array<int64_t, 4> ws, Pair stride, Pair padding, Pair dilation,
           int64_t groups) {
          ConvGeom g = make_geom(xs.data(), ws.data(), stride, padding, dilation, groups);
          return std::string(conv_algo_name(conv_pick_algorithm(g)));
        },
        py::arg("x_shape"), py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"));
}

}  // namespace nnx
