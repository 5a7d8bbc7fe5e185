// Pooling bindings: checks every size the kernels rely on (pool/pool.h), then calls them without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <string>
#include <vector>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/pool_shape.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "pool/pool.h"

namespace nnx {
namespace {

constexpr int kMax = static_cast<int>(PoolKind::max), kAvg = static_cast<int>(PoolKind::avg),
              kLp = static_cast<int>(PoolKind::lp), kGlobalAvg = static_cast<int>(PoolKind::global_avg);

// A pair as the user most likely wrote it: one number when both are equal.
std::string show(int64_t a, int64_t b) { return a == b ? std::to_string(a) : pair_str(a, b); }

}  // namespace

Pool2dShape pool_shape(int kind, const int64_t* xs, const int64_t* ys, int64_t kh, int64_t kw, int64_t sh,
                       int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  Pool2dShape s{};
  s.planes = xs[0] * xs[1];
  s.H = xs[2], s.W = xs[3];
  s.kh = kh, s.kw = kw, s.sh = sh, s.sw = sw, s.ph = ph, s.pw = pw, s.dh = dh, s.dw = dw;
  NNX_REQUIRE(s.H >= 1 && s.W >= 1, "x: expected H and W >= 1, got " + pair_str(s.H, s.W));
  NNX_REQUIRE(s.H * s.W < (int64_t(1) << 31), "x: planes of 2^31 or more elements are not supported");
  if (kind == kGlobalAvg) {
    s.OH = s.OW = 1;
    s.kh = s.H, s.kw = s.W, s.sh = s.sw = s.dh = s.dw = 1, s.ph = s.pw = 0;
  } else {
    const int64_t lim = int64_t(1) << 30;  // keeps every product below in int64
    NNX_REQUIRE(kh <= lim && kw <= lim && sh <= lim && sw <= lim && ph <= lim && pw <= lim && dh <= lim && dw <= lim,
                "pooling: window parameters must be below 2^30");
    NNX_REQUIRE(kh >= 1 && kw >= 1, "kernel_size: expected >= 1, got " + pair_str(kh, kw));
    NNX_REQUIRE(sh >= 1 && sw >= 1, "stride: expected >= 1, got " + pair_str(sh, sw));
    NNX_REQUIRE(dh >= 1 && dw >= 1, "dilation: expected >= 1, got " + pair_str(dh, dw));
    NNX_REQUIRE(kind == kMax || (dh == 1 && dw == 1), "dilation: only max pooling supports dilation");
    NNX_REQUIRE(kind != kLp || (ph == 0 && pw == 0), "padding: lp_pool2d takes no padding");
    // PyTorch's limit: half the kernel (not of the dilated window).
    NNX_REQUIRE(ph >= 0 && pw >= 0 && 2 * ph <= kh && 2 * pw <= kw,
                "padding: expected at most half the kernel size (" + show(kh / 2, kw / 2) + " for kernel_size=" +
                pair_str(kh, kw) + "), got " + show(ph, pw));
    const int64_t ekh = dh * (kh - 1) + 1, ekw = dw * (kw - 1) + 1;
    NNX_REQUIRE(s.H + 2 * ph >= ekh && s.W + 2 * pw >= ekw,
                "kernel_size: the window " + pair_str(ekh, ekw) + " (kernel_size=" + pair_str(kh, kw) + ", dilation=" +
                pair_str(dh, dw) + ") is larger than the padded input " + pair_str(s.H + 2 * ph, s.W + 2 * pw) +
                " (x of shape (" + std::to_string(xs[0]) + ", " + std::to_string(xs[1]) + ", " +
                std::to_string(s.H) + ", " + std::to_string(s.W) + "), padding=" + pair_str(ph, pw) + ")");
    const int64_t oh = pool_output_size(s.H, kh, sh, ph, dh), ow = pool_output_size(s.W, kw, sw, pw, dw);
    s.OH = oh, s.OW = ow;
  }
  NNX_REQUIRE(ys == nullptr || (ys[0] == xs[0] && ys[1] == xs[1] && ys[2] == s.OH && ys[3] == s.OW),
              "pooling: output/gradient shape does not match the input and parameters");
  return s;
}

int32_t* indices_ptr(py::array& a, const int64_t* shape, bool writable) {
  if (a.dtype().kind() != 'i' || a.itemsize() != 4)  // the message only on failure: str(dtype) runs Python
    throw py::value_error("indices: expected an int32 array, got " + std::string(py::str(a.dtype())));
  NNX_REQUIRE(a.ndim() == 4, "indices: expected 4 dimensions");
  for (int i = 0; i < 4; ++i) NNX_REQUIRE(a.shape(i) == shape[i], "indices: expected the shape of the output");
  NNX_REQUIRE((a.flags() & py::array::c_style) != 0, "indices: expected a C-contiguous array");
  NNX_REQUIRE(!writable || a.writeable(), "indices: output array is read-only");
  return static_cast<int32_t*>(writable ? a.mutable_data() : const_cast<void*>(a.data()));
}

namespace {

template <class T>
void forward(int kind, const py::array& x, py::array& y, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
             int64_t ph, int64_t pw, int64_t dh, int64_t dw, double p) {
  auto X = view_in<T>(x, "x", 4);
  auto Y = view_out<T>(y, "out", 4);
  NNX_REQUIRE(X.contiguous(), "x: the kernels need a C-contiguous array");
  Pool2dShape s = pool_shape(kind, X.shape, Y.shape, kh, kw, sh, sw, ph, pw, dh, dw);
  if (s.planes == 0) return;
  const T* px = X.data;
  T* py_ = Y.data;
  const T pp = static_cast<T>(p);
  run_kernel("pool2d_forward", {{x, Use::read}, {y, Use::write}},
             {double(kind), double(kh), double(kw), double(sh), double(sw), double(ph), double(pw), double(dh),
              double(dw), p},
             [=](int nt) {
               switch (kind) {
                 case kMax: max_pool2d_forward<T>(s, px, py_, nt); break;
                 case kAvg: avg_pool2d_forward<T>(s, px, py_, nt); break;
                 case kLp: lp_pool2d_forward<T>(s, pp, px, py_, nt); break;
                 default: global_avg_pool2d_forward<T>(s, px, py_, nt); break;
               }
             });
}

template <class T>
void backward(int kind, const py::array& dy, const py::array& x, py::array& dx, int64_t kh, int64_t kw,
              int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, double p) {
  auto DY = view_in<T>(dy, "dy", 4);
  auto X = view_in<T>(x, "x", 4);
  auto DX = view_out<T>(dx, "dx", 4);
  NNX_REQUIRE(X.contiguous() && DY.contiguous(), "x, dy: the kernels need C-contiguous arrays");
  for (int i = 0; i < 4; ++i) NNX_REQUIRE(DX.shape[i] == X.shape[i], "dx: expected the shape of x");
  Pool2dShape s = pool_shape(kind, X.shape, DY.shape, kh, kw, sh, sw, ph, pw, dh, dw);
  if (s.planes == 0) return;
  const T *pdy = DY.data, *px = X.data;
  T* pdx = DX.data;
  const T pp = static_cast<T>(p);
  run_kernel("pool2d_backward", {{dy, Use::read}, {x, Use::read}, {dx, Use::write}},
             {double(kind), double(kh), double(kw), double(sh), double(sw), double(ph), double(pw), double(dh),
              double(dw), p},
             [=](int nt) {
               switch (kind) {
                 case kMax: max_pool2d_backward<T>(s, pdy, px, pdx, nt); break;
                 case kAvg: avg_pool2d_backward<T>(s, pdy, pdx, nt); break;
                 case kLp: lp_pool2d_backward<T>(s, pp, pdy, px, pdx, nt); break;
                 default: global_avg_pool2d_backward<T>(s, pdy, pdx, nt); break;
               }
             });
}


template <class T>
void max_indices_forward(const py::array& x, py::array& y, py::array& idx, int64_t kh, int64_t kw, int64_t sh,
                         int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, bool relu) {
  auto X = view_in<T>(x, "x", 4);
  auto Y = view_out<T>(y, "out", 4);
  NNX_REQUIRE(X.contiguous(), "x: the kernels need a C-contiguous array");
  Pool2dShape s = pool_shape(kMax, X.shape, Y.shape, kh, kw, sh, sw, ph, pw, dh, dw);
  int32_t* ip = indices_ptr(idx, Y.shape, true);
  if (s.planes == 0) return;
  const T* px = X.data;
  T* py_ = Y.data;
  run_kernel("max_pool2d_indices_forward", {{x, Use::read}, {y, Use::write}, {idx, Use::write}},
             {double(kh), double(kw), double(sh), double(sw), double(ph), double(pw), double(dh), double(dw),
              double(relu)},
             [=](int nt) {
               if (relu) max_pool2d_relu_forward_indices<T>(s, px, py_, ip, nt);
               else max_pool2d_forward_indices<T>(s, px, py_, ip, nt);
             });
}

// relu_y: None, or the output of a forward run with relu (the ReLU's mask is read on it).
template <class T>
void max_indices_backward(const py::array& dy, py::array& idx, py::array& dx, int64_t kh, int64_t kw, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, const py::object& relu_y) {
  auto DY = view_in<T>(dy, "dy", 4);
  auto DX = view_out<T>(dx, "dx", 4);
  NNX_REQUIRE(DY.contiguous(), "dy: the kernels need a C-contiguous array");
  Pool2dShape s = pool_shape(kMax, DX.shape, DY.shape, kh, kw, sh, sw, ph, pw, dh, dw);
  const int32_t* ip = indices_ptr(idx, DY.shape, false);
  auto Y = view_opt<T>(relu_y, "relu_y", 4);
  if (Y.data) {
    NNX_REQUIRE(Y.contiguous(), "relu_y: the kernels need a C-contiguous array");
    for (int i = 0; i < 4; ++i) NNX_REQUIRE(Y.shape[i] == DY.shape[i], "relu_y: expected dy's shape");
  }
  const T* py_ = Y.data;
  if (s.planes == 0) return;
  const T* pdy = DY.data;
  T* pdx = DX.data;
  run_kernel("max_pool2d_indices_backward", {{dy, Use::read}, {idx, Use::read}, {dx, Use::write}, {relu_y, Use::read}},
             {double(kh), double(kw), double(sh), double(sw), double(ph), double(pw), double(dh), double(dw),
              double(py_ != nullptr)},
             [=](int nt) {
               // Thrown without touching Python: the call may run without the GIL (replay).
               if (!(py_ ? max_pool2d_relu_backward_indices<T>(s, pdy, py_, ip, pdx, nt)
                         : max_pool2d_backward_indices<T>(s, pdy, ip, pdx, nt)))
                 throw py::value_error("indices: expected plane offsets in [-1, " + std::to_string(s.H * s.W) +
                                       ") (as returned by max_pool2d(..., return_indices=True)), found one outside");
             });
}

void check_kind(int kind, double p) {
  NNX_REQUIRE(kind >= kMax && kind <= kGlobalAvg, "pooling: unknown kind " + std::to_string(kind));
  NNX_REQUIRE(kind != kLp || (std::isfinite(p) && p > 0), "norm_type: expected a finite number > 0");
}

}  // namespace

void bind_pool(py::module_& m) {
  py::dict kinds;
  kinds["max"] = kMax, kinds["avg"] = kAvg, kinds["lp"] = kLp, kinds["global_avg"] = kGlobalAvg;
  m.attr("POOL_KINDS") = kinds;
  m.def("pool2d_output_shape",
        [](int kind, std::vector<int64_t> xs, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
           int64_t dh, int64_t dw) {
          NNX_REQUIRE(kind >= kMax && kind <= kGlobalAvg, "pooling: unknown kind " + std::to_string(kind));
          NNX_REQUIRE(xs.size() == 4, "x: expected 4 dimensions (N, C, H, W)");
          Pool2dShape s = pool_shape(kind, xs.data(), nullptr, kh, kw, sh, sw, ph, pw, dh, dw);
          return py::make_tuple(xs[0], xs[1], s.OH, s.OW);
        },
        "(N, C, OH, OW) of a pooling of x of shape (N, C, H, W); ValueError naming the bad parameter.");
  m.def("pool2d_forward",
        [](int kind, const py::array& x, py::array& out, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
           int64_t ph, int64_t pw, int64_t dh, int64_t dw, double p) {
          check_kind(kind, p);
          if (is_f32(x)) forward<float>(kind, x, out, kh, kw, sh, sw, ph, pw, dh, dw, p);
          else forward<double>(kind, x, out, kh, kw, sh, sw, ph, pw, dh, dw, p);
        },
        py::arg("kind"), py::arg("x"), py::arg("out"), py::arg("kh"), py::arg("kw"), py::arg("sh"),
        py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("p") = 1.0,
        "Pooling forward (kind 0 max, 1 avg, 2 lp, 3 global avg): x (N,C,H,W) C-contiguous -> out.");
  m.def("pool2d_backward",
        [](int kind, const py::array& dy, const py::array& x, py::array& dx, int64_t kh, int64_t kw,
           int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, double p) {
          check_kind(kind, p);
          if (is_f32(x)) backward<float>(kind, dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw, p);
          else backward<double>(kind, dy, x, dx, kh, kw, sh, sw, ph, pw, dh, dw, p);
        },
        py::arg("kind"), py::arg("dy"), py::arg("x"), py::arg("dx"), py::arg("kh"), py::arg("kw"),
        py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
        py::arg("p") = 1.0, "Pooling backward: dy, x (C-contiguous) -> dx (x's shape).");
  m.def("max_pool2d_indices_forward",
        [](const py::array& x, py::array& out, py::array& indices, int64_t kh, int64_t kw, int64_t sh,
           int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, bool relu) {
          if (is_f32(x)) max_indices_forward<float>(x, out, indices, kh, kw, sh, sw, ph, pw, dh, dw, relu);
          else max_indices_forward<double>(x, out, indices, kh, kw, sh, sw, ph, pw, dh, dw, relu);
        },
        py::arg("x"), py::arg("out"), py::arg("indices"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
        py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("relu") = false,
        "Max pooling forward that also writes the int32 plane offset of each output's pick; relu=True writes "
        "relu of the maxima (the indices stay those of the maxima).");
  m.def("max_pool2d_indices_backward",
        [](const py::array& dy, py::array& indices, py::array& dx, int64_t kh, int64_t kw, int64_t sh,
           int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, const py::object& relu_y) {
          if (is_f32(dy)) max_indices_backward<float>(dy, indices, dx, kh, kw, sh, sw, ph, pw, dh, dw, relu_y);
          else max_indices_backward<double>(dy, indices, dx, kh, kw, sh, sw, ph, pw, dh, dw, relu_y);
        },
        py::arg("dy"), py::arg("indices"), py::arg("dx"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
        py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("relu_y") = py::none(),
        "Max pooling backward from saved indices: dx = dy scattered to them (dx has x's shape); with relu_y (the "
        "output of a relu=True forward) dy is first masked by relu_y > 0.");
  m.def("pool_kernels", [](bool f64) {
    return std::string(f64 ? pool_kernels_name<double>() : pool_kernels_name<float>());
  });
}

}  // namespace nnx
