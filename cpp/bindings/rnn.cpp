// Bindings of the recurrent family. The ops layer (python/nnx/ops/rnn.py) has already checked dtypes,
// shapes and lengths and made the inputs C-contiguous; these checks only keep a wrong call from reaching
// a kernel with a bad pointer or an out-of-range length.
#include <pybind11/numpy.h>

#include <string>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "rnn/embedding.h"
#include "rnn/rnn.h"

namespace nnx {
namespace {

RnnCell cell_of(int code) {
  NNX_REQUIRE(code >= 0 && code <= 3, "cell: unknown recurrent cell code " + std::to_string(code));
  return static_cast<RnnCell>(code);
}

template <class V>
void require_shape(const V& v, const char* name, std::initializer_list<int64_t> shape) {
  NNX_REQUIRE(v.contiguous(), std::string(name) + ": expected a C-contiguous array");
  NNX_REQUIRE(v.ndim == static_cast<int>(shape.size()), std::string(name) + ": wrong number of dimensions");
  int i = 0;
  for (int64_t s : shape) NNX_REQUIRE(v.shape[i++] == s, std::string(name) + ": wrong shape");
}

template <class T>
T* opt_out(const py::object& o, const char* name, std::initializer_list<int64_t> shape) {
  if (o.is_none()) return nullptr;
  py::array a = py::cast<py::array>(o);
  auto v = view_out<T>(a, name);
  require_shape(v, name, shape);
  return v.data;
}

template <class T>
const T* opt_in(const py::object& o, const char* name, std::initializer_list<int64_t> shape) {
  if (o.is_none()) return nullptr;
  auto v = view_in<T>(py::cast<py::array>(o), name);
  require_shape(v, name, shape);
  return v.data;
}

// Run by each kernel call itself (not only by the binding), so a replayed step checks the lengths it is
// given: they are data of the step, and the kernel would use a bad one as an address. Throws without
// touching Python (it may run without the GIL).
void check_lengths(const int64_t* p, int64_t steps, int64_t N) {
  if (p == nullptr) return;
  for (int64_t n = 0; n < N; ++n)
    if (p[n] < 1 || p[n] > steps) throw py::value_error("lengths: values must lie in [1, steps]");
}

const int64_t* lengths_of(const py::object& o, int64_t steps, int64_t N) {
  if (o.is_none()) return nullptr;
  auto a = py::cast<py::array>(o);
  NNX_REQUIRE(py::isinstance<py::array_t<int64_t>>(a) && a.dtype().kind() == 'i' && a.itemsize() == 8,
              "lengths: expected an int64 array");
  NNX_REQUIRE(a.ndim() == 1 && a.shape(0) == N && (N <= 1 || a.strides(0) == 8),
              "lengths: expected a contiguous (N,) array");
  const int64_t* p = static_cast<const int64_t*>(a.data());
  check_lengths(p, steps, N);
  return p;
}

struct Sizes {
  int64_t steps, N, I, H, G;
};

template <class T>
Sizes sizes_of(RnnCell cell, const py::array& x, const py::array& w_hh, bool batch_first) {
  auto X = view_in<T>(x, "x", 3);
  auto W = view_in<T>(w_hh, "w_hh", 2);
  Sizes s{X.shape[batch_first ? 1 : 0], X.shape[batch_first ? 0 : 1], X.shape[2], W.shape[1], rnn_gate_count(cell)};
  NNX_REQUIRE(s.steps >= 1 && s.N >= 1 && s.I >= 1 && s.H >= 1, "x, w_hh: every size must be at least 1");
  return s;
}

template <class T>
void forward_py(int code, const py::array& x, const py::array& h0, const py::object& c0, const py::array& w_ih,
                const py::array& w_hh, const py::object& b_ih, const py::object& b_hh, const py::object& lengths,
                py::array& y, py::array& h_n, const py::object& c_n, py::array& ws, bool bf) {
  const RnnCell cell = cell_of(code);
  const Sizes s = sizes_of<T>(cell, x, w_hh, bf);
  const int64_t GH = s.G * s.H, D0 = bf ? s.N : s.steps, D1 = bf ? s.steps : s.N;  // the two leading axes
  require_shape(view_in<T>(x, "x"), "x", {D0, D1, s.I});
  require_shape(view_in<T>(h0, "h0"), "h0", {s.N, s.H});
  require_shape(view_in<T>(w_ih, "w_ih"), "w_ih", {GH, s.I});
  require_shape(view_in<T>(w_hh, "w_hh"), "w_hh", {GH, s.H});
  const bool lstm = cell == RnnCell::lstm;
  NNX_REQUIRE(!lstm || (!c0.is_none() && !c_n.is_none()), "c0, c_n: the LSTM needs both");
  const T* c0p = lstm ? opt_in<T>(c0, "c0", {s.N, s.H}) : nullptr;
  T* cnp = lstm ? opt_out<T>(c_n, "c_n", {s.N, s.H}) : nullptr;
  const T* bi = opt_in<T>(b_ih, "b_ih", {GH});
  const T* bh = opt_in<T>(b_hh, "b_hh", {GH});
  const int64_t* len = lengths_of(lengths, s.steps, s.N);
  auto Y = view_out<T>(y, "y");
  require_shape(Y, "y", {D0, D1, s.H});
  auto HN = view_out<T>(h_n, "h_n");
  require_shape(HN, "h_n", {s.N, s.H});
  auto WS = view_out<T>(ws, "workspace", 1);
  NNX_REQUIRE(WS.shape[0] >= rnn_workspace_size(cell, s.steps, s.N, s.H), "workspace: too small");
  const T* xp = view_in<T>(x, "x").data;
  const T* h0p = view_in<T>(h0, "h0").data;
  const T* wi = view_in<T>(w_ih, "w_ih").data;
  const T* wh = view_in<T>(w_hh, "w_hh").data;
  T *yp = Y.data, *hnp = HN.data, *wsp = WS.data;
  run_kernel("rnn_forward",
             {{x, Use::read}, {h0, Use::read}, {c0, Use::read}, {w_ih, Use::read}, {w_hh, Use::read},
              {b_ih, Use::read}, {b_hh, Use::read}, {lengths, Use::read}, {y, Use::write}, {h_n, Use::write},
              {c_n, Use::write}, {ws, Use::write}},
             {double(code), double(s.steps), double(s.N), double(s.I), double(s.H), double(bf)}, [=](int nt) {
               check_lengths(len, s.steps, s.N);
               rnn_forward<T>(cell, s.steps, s.N, s.I, s.H, xp, h0p, c0p, wi, wh, bi, bh, len, yp, hnp, cnp, wsp, nt,
                              bf);
             });
}

template <class T>
void backward_py(int code, const py::array& x, const py::array& h0, const py::object& c0, const py::array& w_ih,
                 const py::array& w_hh, const py::object& lengths, const py::array& y, const py::array& dy,
                 const py::object& dh_n, const py::object& dc_n, py::array& ws, const py::object& dx,
                 const py::object& dh0, const py::object& dc0, const py::object& dw_ih, const py::object& dw_hh,
                 const py::object& db_ih, const py::object& db_hh, bool bf) {
  const RnnCell cell = cell_of(code);
  const Sizes s = sizes_of<T>(cell, x, w_hh, bf);
  const int64_t GH = s.G * s.H, D0 = bf ? s.N : s.steps, D1 = bf ? s.steps : s.N;  // the two leading axes
  require_shape(view_in<T>(x, "x"), "x", {D0, D1, s.I});
  require_shape(view_in<T>(h0, "h0"), "h0", {s.N, s.H});
  require_shape(view_in<T>(w_ih, "w_ih"), "w_ih", {GH, s.I});
  require_shape(view_in<T>(w_hh, "w_hh"), "w_hh", {GH, s.H});
  require_shape(view_in<T>(y, "y"), "y", {D0, D1, s.H});
  require_shape(view_in<T>(dy, "dy"), "dy", {D0, D1, s.H});
  const bool lstm = cell == RnnCell::lstm;
  NNX_REQUIRE(!lstm || !c0.is_none(), "c0: the LSTM needs it");
  const T* c0p = lstm ? opt_in<T>(c0, "c0", {s.N, s.H}) : nullptr;
  const T* dhn = opt_in<T>(dh_n, "dh_n", {s.N, s.H});
  const T* dcn = lstm ? opt_in<T>(dc_n, "dc_n", {s.N, s.H}) : nullptr;
  const int64_t* len = lengths_of(lengths, s.steps, s.N);
  auto WS = view_out<T>(ws, "workspace", 1);
  NNX_REQUIRE(WS.shape[0] >= rnn_workspace_size(cell, s.steps, s.N, s.H), "workspace: too small");
  T* dxp = opt_out<T>(dx, "dx", {D0, D1, s.I});
  T* dh0p = opt_out<T>(dh0, "dh0", {s.N, s.H});
  T* dc0p = lstm ? opt_out<T>(dc0, "dc0", {s.N, s.H}) : nullptr;
  T* dwi = opt_out<T>(dw_ih, "dw_ih", {GH, s.I});
  T* dwh = opt_out<T>(dw_hh, "dw_hh", {GH, s.H});
  T* dbi = opt_out<T>(db_ih, "db_ih", {GH});
  T* dbh = opt_out<T>(db_hh, "db_hh", {GH});
  const T* xp = view_in<T>(x, "x").data;
  const T* h0p = view_in<T>(h0, "h0").data;
  const T* wi = view_in<T>(w_ih, "w_ih").data;
  const T* wh = view_in<T>(w_hh, "w_hh").data;
  const T* yp = view_in<T>(y, "y").data;
  const T* dyp = view_in<T>(dy, "dy").data;
  T* wsp = WS.data;
  // The backward overwrites the forward's workspace with gate gradients: it updates it.
  run_kernel("rnn_backward",
             {{x, Use::read}, {h0, Use::read}, {lstm ? c0 : py::none(), Use::read}, {w_ih, Use::read},
              {w_hh, Use::read}, {lengths, Use::read}, {y, Use::read}, {dy, Use::read}, {dh_n, Use::read},
              {lstm ? dc_n : py::none(), Use::read}, {ws, Use::update}, {dx, Use::write}, {dh0, Use::write},
              {lstm ? dc0 : py::none(), Use::write}, {dw_ih, Use::write}, {dw_hh, Use::write}, {db_ih, Use::write},
              {db_hh, Use::write}},
             {double(code), double(s.steps), double(s.N), double(s.I), double(s.H), double(bf)}, [=](int nt) {
               check_lengths(len, s.steps, s.N);
               rnn_backward<T>(cell, s.steps, s.N, s.I, s.H, xp, h0p, c0p, wi, wh, len, yp, dyp, dhn, dcn, wsp, dxp,
                               dh0p, dc0p, dwi, dwh, dbi, dbh, nt, bf);
             });
}

// ---- embedding ----

const int64_t* ids_of(const py::array& ids) {
  NNX_REQUIRE(py::isinstance<py::array_t<int64_t>>(ids) && ids.dtype().kind() == 'i' && ids.itemsize() == 8,
              "ids: expected an int64 array");
  NNX_REQUIRE(ids.flags() & py::array::c_style, "ids: expected a C-contiguous array");
  return static_cast<const int64_t*>(ids.data());
}

// Run by each kernel call, so a replayed step checks the ids it is given (they are used as addresses).
void check_ids(const int64_t* p, int64_t n, int64_t V) {
  for (int64_t i = 0; i < n; ++i)
    if (p[i] < 0 || p[i] >= V)
      throw py::value_error("ids: expected ids in [0, " + std::to_string(V) + "), found " + std::to_string(p[i]));
}

template <class T>
void embedding_py(const py::array& ids, const py::array& weight, py::array& y) {
  auto W = view_in<T>(weight, "weight", 2);
  NNX_REQUIRE(W.contiguous(), "weight: expected a C-contiguous array");
  const int64_t V = W.shape[0], D = W.shape[1], n = ids.size();
  const int64_t* pi = ids_of(ids);
  auto Y = view_out<T>(y, "y");
  NNX_REQUIRE(Y.size() == n * D, "y: expected ids.size * embedding_dim elements");
  const T* pw = W.data;
  T* py_ = Y.data;
  run_kernel("embedding", {{ids, Use::read}, {weight, Use::read}, {y, Use::write}}, {double(V), double(D)},
             [=](int nt) {
               check_ids(pi, n, V);
               embedding_forward<T>(pw, D, pi, n, py_, nt);
             });
}

template <class T>
void embedding_backward_py(const py::array& dy, const py::array& ids, int64_t padding_idx, py::array& dweight) {
  auto DW = view_out<T>(dweight, "dweight", 2);
  const int64_t V = DW.shape[0], D = DW.shape[1], n = ids.size();
  const int64_t* pi = ids_of(ids);
  auto G = view_in<T>(dy, "dy");
  NNX_REQUIRE(G.contiguous() && G.size() == n * D,
              "dy: expected a C-contiguous array of ids.size * embedding_dim elements");
  NNX_REQUIRE(padding_idx >= -1 && padding_idx < V, "padding_idx: expected -1 (none) or a row of the table");
  const T* pg = G.data;
  T* pd = DW.data;
  run_kernel("embedding_backward", {{dy, Use::read}, {ids, Use::read}, {dweight, Use::write}},
             {double(V), double(D), double(padding_idx)}, [=](int nt) {
               check_ids(pi, n, V);
               embedding_backward<T>(pg, pi, n, V, D, padding_idx, pd, nt);
             });
}

}  // namespace

void bind_rnn(py::module_& m) {
  m.def("rnn_gate_count", [](int cell) { return rnn_gate_count(cell_of(cell)); }, py::arg("cell"),
        "Gate blocks of H columns: 1 (rnn_tanh, rnn_relu), 4 (lstm), 3 (gru).");
  m.def("rnn_workspace_size", [](int cell, int64_t steps, int64_t N, int64_t H) {
          NNX_REQUIRE(steps >= 0 && N >= 0 && H >= 0, "rnn_workspace_size: sizes must be non-negative");
          return rnn_workspace_size(cell_of(cell), steps, N, H);
        },
        py::arg("cell"), py::arg("steps"), py::arg("N"), py::arg("H"),
        "Elements of the workspace rnn_forward / rnn_backward need (cell codes: 0 rnn_tanh, 1 rnn_relu, 2 lstm, 3 gru).");
  m.def("rnn_forward",
        [](int cell, const py::array& x, const py::array& h0, const py::object& c0, const py::array& w_ih,
           const py::array& w_hh, const py::object& b_ih, const py::object& b_hh, const py::object& lengths,
           py::array& y, py::array& h_n, const py::object& c_n, py::array& ws, bool batch_first) {
          if (is_f32(x))
            forward_py<float>(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, y, h_n, c_n, ws, batch_first);
          else
            forward_py<double>(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, y, h_n, c_n, ws, batch_first);
        },
        py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("b_ih"), py::arg("b_hh"), py::arg("lengths"), py::arg("y"), py::arg("h_n"), py::arg("c_n"),
        py::arg("workspace"), py::arg("batch_first") = false,
        "One recurrent layer over a time-major (or batch_first) sequence (cpp/rnn/rnn.h).");
  m.def("rnn_backward",
        [](int cell, const py::array& x, const py::array& h0, const py::object& c0, const py::array& w_ih,
           const py::array& w_hh, const py::object& lengths, const py::array& y, const py::array& dy,
           const py::object& dh_n, const py::object& dc_n, py::array& ws, const py::object& dx,
           const py::object& dh0, const py::object& dc0, const py::object& dw_ih, const py::object& dw_hh,
           const py::object& db_ih, const py::object& db_hh, bool batch_first) {
          if (is_f32(x))
            backward_py<float>(cell, x, h0, c0, w_ih, w_hh, lengths, y, dy, dh_n, dc_n, ws, dx, dh0, dc0, dw_ih,
                               dw_hh, db_ih, db_hh, batch_first);
          else
            backward_py<double>(cell, x, h0, c0, w_ih, w_hh, lengths, y, dy, dh_n, dc_n, ws, dx, dh0, dc0, dw_ih,
                                dw_hh, db_ih, db_hh, batch_first);
        },
        py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("lengths"), py::arg("y"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"), py::arg("workspace"),
        py::arg("dx"), py::arg("dh0"), py::arg("dc0"), py::arg("dw_ih"), py::arg("dw_hh"), py::arg("db_ih"),
        py::arg("db_hh"), py::arg("batch_first") = false,
        "Backward through time of rnn_forward; consumes (overwrites) the forward's workspace.");
  m.def("embedding", [](const py::array& ids, const py::array& weight, py::array& y) {
          if (is_f32(weight)) embedding_py<float>(ids, weight, y);
          else embedding_py<double>(ids, weight, y);
        },
        py::arg("ids"), py::arg("weight"), py::arg("y"), "y = weight[ids] (ids int64, y ids.shape + (D,)).");
  m.def("embedding_backward", [](const py::array& dy, const py::array& ids, int64_t padding_idx, py::array& dweight) {
          if (is_f32(dweight)) embedding_backward_py<float>(dy, ids, padding_idx, dweight);
          else embedding_backward_py<double>(dy, ids, padding_idx, dweight);
        },
        py::arg("dy"), py::arg("ids"), py::arg("padding_idx"), py::arg("dweight"),
        "dweight = dy summed per id in input order (padding_idx -1: none; that row stays 0).");
  m.def("rnn_ukernel_name", [](bool f32) {
          return std::string(f32 ? rnn_ukernel_name<float>() : rnn_ukernel_name<double>());
        },
        py::arg("f32") = true, "Name of the recurrent step micro-kernel set the active ISA uses.");
}

}  // namespace nnx
