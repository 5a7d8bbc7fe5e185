#include <pybind11/stl.h>

#include <array>
#include <string>
#include <utility>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/pool_shape.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "conv/conv.h"
#include "conv/winograd.h"

namespace nnx {
namespace {

using Pair = std::pair<int64_t, int64_t>;

// The one validation of a convolution's geometry (nnx.ops reads the output shape from it): checks every
// size the kernels rely on and returns the geometry; raises ValueError naming the argument otherwise.
ConvGeom make_geom(const int64_t* xs, const int64_t* ws, Pair stride, Pair padding, Pair dilation,
                   int64_t groups) {
  // Below 2^30 (as nnx.ops checks): keeps H + 2 * padding and dilation * (R - 1) + 1 inside int64 for any
  // R, H of an array that fits in memory, and the kernels' index arithmetic with them.
  const int64_t lim = int64_t(1) << 30;
  NNX_REQUIRE(stride.first >= 1 && stride.second >= 1, "stride: expected values >= 1");
  NNX_REQUIRE(padding.first >= 0 && padding.second >= 0, "padding: expected values >= 0");
  NNX_REQUIRE(dilation.first >= 1 && dilation.second >= 1, "dilation: expected values >= 1");
  NNX_REQUIRE(stride.first <= lim && stride.second <= lim, "stride: expected values <= 2^30");
  NNX_REQUIRE(padding.first <= lim && padding.second <= lim, "padding: expected values <= 2^30");
  NNX_REQUIRE(dilation.first <= lim && dilation.second <= lim, "dilation: expected values <= 2^30");
  // Dimensions below 2^32 and element counts below 2^62 (real arrays are far smaller; conv2d_algorithm
  // takes bare shapes): with the limits above, no size product in the geometry or the kernels wraps.
  double xn = 1, wn = 1;
  for (int i = 0; i < 4; ++i) {
    NNX_REQUIRE(xs[i] >= 0 && xs[i] < (lim << 2), "x: dimensions must lie in [0, 2^32), got " + shape_str(xs, 4));
    NNX_REQUIRE(ws[i] >= 0 && ws[i] < (lim << 2), "w: dimensions must lie in [0, 2^32), got " + shape_str(ws, 4));
    xn *= static_cast<double>(xs[i]);
    wn *= static_cast<double>(ws[i]);
  }
  NNX_REQUIRE(xn < 0x1p62, "x: more than 2^62 elements in " + shape_str(xs, 4));
  NNX_REQUIRE(wn < 0x1p62, "w: more than 2^62 elements in " + shape_str(ws, 4));
  NNX_REQUIRE(groups >= 1, "groups: expected an int >= 1");
  ConvGeom g{};
  g.N = xs[0], g.C = xs[1], g.H = xs[2], g.W = xs[3];
  g.K = ws[0], g.R = ws[2], g.S = ws[3];
  g.sh = stride.first, g.sw = stride.second, g.ph = padding.first, g.pw = padding.second;
  g.dh = dilation.first, g.dw = dilation.second, g.groups = groups;
  const std::string G = std::to_string(groups), Cs = std::to_string(g.C);
  NNX_REQUIRE(g.C >= 1 && g.H >= 1 && g.W >= 1, "x: expected C, H, W >= 1, got shape " + shape_str(xs, 4));
  NNX_REQUIRE(g.C % groups == 0, "groups: expected a divisor of the " + Cs + " input channels of x, got " + G);
  NNX_REQUIRE(g.K >= 1 && g.K % groups == 0 && ws[1] == g.C / groups && g.R >= 1 && g.S >= 1,
              "w: expected shape (K, " + std::to_string(g.C / groups) +
                  ", R, S) with K a positive multiple of groups=" + G + " for x with " + Cs + " channels, got " +
                  shape_str(ws, 4));
  const int64_t eh = g.dh * (g.R - 1) + 1, ew = g.dw * (g.S - 1) + 1;
  NNX_REQUIRE(eh <= g.H + 2 * g.ph && ew <= g.W + 2 * g.pw,
              "w: the kernel " + std::to_string(g.R) + "x" + std::to_string(g.S) + " with dilation (" +
              std::to_string(g.dh) + ", " + std::to_string(g.dw) + ") spans " + std::to_string(eh) + "x" +
              std::to_string(ew) + ", larger than the input " + std::to_string(g.H) + "x" + std::to_string(g.W) +
              " padded by (" + std::to_string(g.ph) + ", " + std::to_string(g.pw) + ") (" +
              std::to_string(g.H + 2 * g.ph) + "x" + std::to_string(g.W + 2 * g.pw) + ")");
  g.P = (g.H + 2 * g.ph - eh) / g.sh + 1;
  g.Q = (g.W + 2 * g.pw - ew) / g.sw + 1;
  return g;
}

ConvAlgo parse_algo(const std::string& name, const ConvGeom& g) {
  ConvAlgo a;
  if (!conv_algo_parse(name, &a)) {
    std::string known;
    for (int k = 0; k <= static_cast<int>(kConvAlgoLast); ++k)
      known += std::string(known.empty() ? "'" : ", '") + conv_algo_name(static_cast<ConvAlgo>(k)) + "'";
    throw py::value_error("algorithm: expected one of " + known + ", got '" + name + "'");
  }
  std::string why;
  if (!conv_algo_applies(a, g, &why))
    throw py::value_error("algorithm: '" + name + "' needs " + why);
  return a;
}

// A validated convolution: the geometry for one (x shape, w shape, stride, padding, dilation, groups)
// and the algorithm asked for. nnx.ops builds one per distinct call (memoised), so the geometry is checked
// once, not on every forward and backward; the kernels' entry points below only check that the arrays
// they are handed have the plan's shapes (memory safety, not validation).
struct ConvPlan {
  ConvGeom g;
  ConvAlgo algo;  // as asked for (automatic stays automatic: the kernels pick per call)
};

template <class V>
void require_contiguous(const V& v, const char* name) {
  NNX_REQUIRE(v.contiguous(), std::string(name) + ": expected a C-contiguous array");
}

template <class V>
void require_shape(const V& v, const int64_t* expect, int n, const char* name, const char* what) {
  for (int i = 0; i < n; ++i)
    if (v.shape[i] != expect[i])
      throw py::value_error(std::string(name) + ": expected shape " + shape_str(expect, n) + " (" + what +
                            "), got " + shape_str(v.shape, n));
}

struct PlanShapes {
  int64_t x[4], w[4], y[4], b[1];
  explicit PlanShapes(const ConvGeom& g)
      : x{g.N, g.C, g.H, g.W}, w{g.K, g.Cg(), g.R, g.S}, y{g.N, g.K, g.P, g.Q}, b{g.K} {}
};

Act act_of(int act) {
  NNX_REQUIRE(act >= 0 && act <= 4, "activation: unknown activation code " + std::to_string(act));
  return static_cast<Act>(act);
}

// What nnx.compile compares between two recordings of a conv call: the whole geometry and the epilogue.
std::vector<double> plan_attrs(const ConvPlan& p, int act, double slope) {
  const ConvGeom& g = p.g;
  return {double(g.sh), double(g.sw), double(g.ph), double(g.pw), double(g.dh), double(g.dw), double(g.groups),
          double(act), slope, double(static_cast<int>(p.algo))};
}

// A forward's x, w and b (None: no bias), checked against the plan.
template <class T>
struct ForwardInputs {
  View<const T> x, w, b;
};

template <class T>
ForwardInputs<T> forward_inputs(const py::array& x, const py::array& w, const py::object& b, const PlanShapes& s) {
  ForwardInputs<T> in{view_in<T>(x, "x", 4), view_in<T>(w, "w", 4), view_opt<T>(b, "b", 1)};
  require_shape(in.x, s.x, 4, "x", "the plan's input");
  require_shape(in.w, s.w, 4, "w", "the plan's filters");
  require_contiguous(in.x, "x");
  require_contiguous(in.w, "w");
  if (in.b.data) {
    require_shape(in.b, s.b, 1, "b", "one bias per output channel");
    require_contiguous(in.b, "b");
  }
  return in;
}

template <class T>
void forward_py(const py::array& x, const py::array& w, const py::object& b, py::array& y, const ConvPlan& plan,
                int act, double slope) {
  const ConvGeom& g = plan.g;
  const PlanShapes s(g);
  const ForwardInputs<T> in = forward_inputs<T>(x, w, b, s);
  auto Y = view_out<T>(y, "out", 4);
  require_shape(Y, s.y, 4, "out", "the output");
  Act ac = act_of(act);
  const T *px = in.x.data, *pw = in.w.data, *pb = in.b.data;
  T* py_ = Y.data;
  const T sl = static_cast<T>(slope);
  const ConvAlgo a = plan.algo;
  run_kernel("conv2d", {{x, Use::read}, {w, Use::read}, {b, Use::read}, {y, Use::write}}, plan_attrs(plan, act, slope),
             [=](int nt) { conv2d_forward<T>(g, px, pw, pb, py_, ac, sl, a, nt); });
}

// max_pool2d (no padding or dilation; relu: of the maxima) of conv2d(x, w) + b, image by image
// (conv2d_forward_each_image), into out and indices; the convolution's output is never written out.
template <class T>
void forward_max_pool_py(const py::array& x, const py::array& w, const py::object& b, py::array& out,
                         py::array& indices, const ConvPlan& plan, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                         bool relu) {
  const ConvGeom& g = plan.g;
  const PlanShapes s(g);
  const ForwardInputs<T> in = forward_inputs<T>(x, w, b, s);
  auto Y = view_out<T>(out, "out", 4);
  Pool2dShape one = pool_shape(static_cast<int>(PoolKind::max), s.y, Y.shape, kh, kw, sh, sw, 0, 0, 1, 1);
  one.planes = g.K;  // one image's planes
  int32_t* pi = indices_ptr(indices, Y.shape, true);
  const T *px = in.x.data, *pw = in.w.data, *pb = in.b.data;
  T* po = Y.data;
  const ConvAlgo a = plan.algo;
  std::vector<double> attrs = plan_attrs(plan, 0, 0.0);
  attrs.insert(attrs.end(), {double(kh), double(kw), double(sh), double(sw), double(relu)});
  run_kernel("conv2d_max_pool2d", {{x, Use::read}, {w, Use::read}, {b, Use::read}, {out, Use::write},
                                   {indices, Use::write}},
             std::move(attrs), [=](int nt) {
               const int64_t per = g.K * one.OH * one.OW;
               conv2d_forward_each_image<T>(g, px, pw, pb, Act::none, T(0), a, nt, [&](int64_t n, const T* yn) {
                 if (relu) max_pool2d_relu_forward_indices<T>(one, yn, po + n * per, pi + n * per, 1);
                 else max_pool2d_forward_indices<T>(one, yn, po + n * per, pi + n * per, 1);
               });
             });
}

// The gradient array `name` (None to skip it): its data pointer after checking it has `shape`.
template <class T>
T* grad_out(const py::object& arr, py::array* keep, const int64_t* shape, int n, const char* name) {
  if (arr.is_none()) return nullptr;
  *keep = py::cast<py::array>(arr);
  auto v = view_out<T>(*keep, name, n);
  require_shape(v, shape, n, name, "the shape of its variable");
  return v.data;
}

template <class T>
void backward_py(const py::array& dy, const py::array& x, const py::array& w, const py::object& y,
                 const py::object& dx, const py::object& dw, const py::object& db, const ConvPlan& plan, int act,
                 double slope) {
  const ConvGeom& g = plan.g;
  const PlanShapes s(g);
  auto DY = view_in<T>(dy, "dy", 4);
  auto X = view_in<T>(x, "x", 4);
  auto Wt = view_in<T>(w, "w", 4);
  auto Yv = view_opt<T>(y, "y", 4);
  require_shape(X, s.x, 4, "x", "the plan's input");
  require_shape(Wt, s.w, 4, "w", "the plan's filters");
  require_shape(DY, s.y, 4, "dy", "the output of conv2d");
  require_contiguous(DY, "dy");
  require_contiguous(X, "x");
  require_contiguous(Wt, "w");
  Act ac = act_of(act);
  if (ac != Act::none) {
    NNX_REQUIRE(!y.is_none(), "y: conv2d_backward with an activation needs the forward output y");
    require_shape(Yv, s.y, 4, "y", "the output of conv2d");
    require_contiguous(Yv, "y");
  }
  py::array adx, adw, adb;
  T* pdx = grad_out<T>(dx, &adx, s.x, 4, "dx");
  T* pdw = grad_out<T>(dw, &adw, s.w, 4, "dw");
  T* pdb = grad_out<T>(db, &adb, s.b, 1, "db");
  const T* py_ = ac == Act::none ? nullptr : Yv.data;
  const T *pdy = DY.data, *px = X.data, *pw = Wt.data;
  const T sl = static_cast<T>(slope);
  const ConvAlgo a = plan.algo;
  run_kernel("conv2d_backward",
             {{dy, Use::read}, {x, Use::read}, {w, Use::read}, {ac == Act::none ? py::handle() : py::handle(y), Use::read},
              {dx, Use::write}, {dw, Use::write}, {db, Use::write}},
             plan_attrs(plan, act, slope),
             [=](int nt) { conv2d_backward<T>(g, pdy, px, pw, py_, ac, sl, pdx, pdw, pdb, a, nt); });
}

py::tuple tuple4(const int64_t* v) { return py::make_tuple(v[0], v[1], v[2], v[3]); }

}  // namespace

void bind_conv(py::module_& m) {
  py::list algorithms;
  for (int k = 0; k <= static_cast<int>(kConvAlgoLast); ++k) algorithms.append(conv_algo_name(static_cast<ConvAlgo>(k)));
  m.attr("CONV_ALGORITHMS") = py::tuple(algorithms);  // "auto" first, then the algorithms it chooses from
  py::class_<ConvPlan>(m, "Conv2dPlan",
                       "A validated conv2d geometry and algorithm (build it with conv2d_plan; immutable).")
      .def_property_readonly("x_shape", [](const ConvPlan& p) { return tuple4(PlanShapes(p.g).x); })
      .def_property_readonly("w_shape", [](const ConvPlan& p) { return tuple4(PlanShapes(p.g).w); })
      .def_property_readonly("out_shape", [](const ConvPlan& p) { return tuple4(PlanShapes(p.g).y); })
      .def_property_readonly("algorithm", [](const ConvPlan& p) {
        return std::string(conv_algo_name(p.algo == ConvAlgo::automatic ? conv_pick_algorithm(p.g) : p.algo));
      })
      .def_property_readonly("dx_path", [](const ConvPlan& p) {
        return std::string(conv_dx_path_name(conv_dx_path(p.g, p.algo)));
      }, "How conv2d_backward computes dx for this plan (cpp/conv/conv.h, ConvDxPath).");
  m.def("set_conv_dx_path",
        [](const std::string& name) {
          std::string names;
          for (int k = 0; k <= static_cast<int>(kConvDxPathLast); ++k) {
            const char* known = conv_dx_path_name(static_cast<ConvDxPath>(k));
            if (name == known) {
              conv_force_dx_path(static_cast<ConvDxPath>(k));
              return;
            }
            names += std::string(k ? ", '" : "'") + known + "'";
          }
          throw py::value_error("set_conv_dx_path: expected one of " + names + ", got '" + name + "'");
        },
        py::arg("name"),
        "For tests and benchmarks: compute dx by this path wherever it applies ('auto' restores the choice).");
  m.def("set_winograd_tile",
        [](int m) {
          if (m != 0 && m != 2 && m != 4)
            throw py::value_error("set_winograd_tile: expected 2, 4 or 0 (the choice by shape), got " +
                                  std::to_string(m));
          conv_winograd_force_tile(m);
        },
        py::arg("m"),
        "For tests and benchmarks: 3x3 Winograd layers use F(2x2, 3x3) (2) or F(4x4, 3x3) (4); 0 restores the "
        "choice by shape.");
  m.def("winograd_tile",
        [](std::array<int64_t, 4> xs, std::array<int64_t, 4> ws, Pair padding) {
          return conv_winograd_tile(make_geom(xs.data(), ws.data(), Pair{1, 1}, padding, Pair{1, 1}, 1));
        },
        py::arg("x_shape"), py::arg("w_shape"), py::arg("padding"),
        "The output tile M of F(MxM, RxR) a stride-1 Winograd layer of these shapes uses.");
  m.def("conv2d_plan",
        [](std::array<int64_t, 4> xs, std::array<int64_t, 4> ws, Pair stride, Pair padding, Pair dilation,
           int64_t groups, const std::string& algo) {
          ConvPlan p;
          p.g = make_geom(xs.data(), ws.data(), stride, padding, dilation, groups);
          p.algo = parse_algo(algo, p.g);
          return p;
        },
        py::arg("x_shape"), py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("algorithm") = "auto",
        "Validates a convolution's geometry and algorithm once; conv2d and conv2d_backward take the plan.");
  m.def("conv2d",
        [](const py::array& x, const py::array& w, const py::object& b, py::array& out, const ConvPlan& plan,
           int act, double slope) {
          if (is_f32(x)) forward_py<float>(x, w, b, out, plan, act, slope);
          else forward_py<double>(x, w, b, out, plan, act, slope);
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("out"), py::arg("plan"), py::arg("act") = 0,
        py::arg("slope") = 0.01,
        "out = act(conv2d(x, w) + b); all arrays C-contiguous with the plan's shapes, out preallocated.");
  m.def("conv2d_max_pool2d",
        [](const py::array& x, const py::array& w, const py::object& b, py::array& out, py::array& indices,
           const ConvPlan& plan, int64_t kh, int64_t kw, int64_t sh, int64_t sw, bool relu) {
          if (is_f32(x)) forward_max_pool_py<float>(x, w, b, out, indices, plan, kh, kw, sh, sw, relu);
          else forward_max_pool_py<double>(x, w, b, out, indices, plan, kh, kw, sh, sw, relu);
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("out"), py::arg("indices"), py::arg("plan"), py::arg("kh"),
        py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("relu"),
        "out, indices = max_pool2d(conv2d(x, w) + b, (kh, kw), (sh, sw), return_indices=True), relu of the maxima "
        "with relu=True; the convolution's output is pooled image by image, never stored.");
  m.def("conv2d_backward",
        [](const py::array& dy, const py::array& x, const py::array& w, const py::object& y, const py::object& dx,
           const py::object& dw, const py::object& db, const ConvPlan& plan, int act, double slope) {
          if (is_f32(x)) backward_py<float>(dy, x, w, y, dx, dw, db, plan, act, slope);
          else backward_py<double>(dy, x, w, y, dx, dw, db, plan, act, slope);
        },
        py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("y"), py::arg("dx"), py::arg("dw"), py::arg("db"),
        py::arg("plan"), py::arg("act") = 0, py::arg("slope") = 0.01,
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
