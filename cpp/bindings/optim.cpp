// Optimizer steps: update a parameter and its state arrays in place. Every array must be C-contiguous,
// of the parameter's dtype and size, and (except grad) writable; state arrays may be None where the
// kernel's contract allows it.
#include <pybind11/numpy.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "optim/optim.h"

namespace nnx {
namespace {

template <class T>
T* inout(py::array& a, const char* name, int64_t n) {
  auto v = view_out<T>(a, name);
  NNX_REQUIRE(v.size() == n,
              std::string(name) + ": expected " + std::to_string(n) + " elements (the size of param), got " +
                  std::to_string(v.size()));
  return v.data;
}

template <class T>
T* inout_opt(const py::object& o, const char* name, int64_t n, bool needed) {
  if (o.is_none()) {
    NNX_REQUIRE(!needed, std::string(name) + ": this update needs the state array, got None");
    return nullptr;
  }
  py::array a = py::cast<py::array>(o);
  return inout<T>(a, name, n);
}

template <class T>
const T* input(const py::array& a, const char* name, int64_t n) {
  auto v = view_in<T>(a, name);
  NNX_REQUIRE(v.contiguous(), std::string(name) + ": expected a C-contiguous array");
  NNX_REQUIRE(v.size() == n,
              std::string(name) + ": expected " + std::to_string(n) + " elements (the size of param), got " +
                  std::to_string(v.size()));
  return v.data;
}

template <class T>
void sgd_py(py::array& param, const py::array& grad, const py::object& buf, const SgdHyper& h) {
  const int64_t n = view_out<T>(param, "param").size();
  T* p = inout<T>(param, "param", n);
  const T* g = input<T>(grad, "grad", n);
  T* b = inout_opt<T>(buf, "momentum_buffer", n, h.momentum != 0.0);
  run_kernel("sgd_step", {{param, Use::update}, {grad, Use::read}, {buf, Use::update}},
             {h.lr, h.momentum, h.dampening, h.weight_decay, double(h.nesterov), double(h.first_step)},
             [=](int nt) { sgd_step<T>(n, p, g, b, h, nt); });
}

template <class T>
void adam_py(py::array& param, const py::array& grad, py::array& m, py::array& v, const py::object& vmax,
             const AdamHyper& h) {
  const int64_t n = view_out<T>(param, "param").size();
  T* p = inout<T>(param, "param", n);
  const T* g = input<T>(grad, "grad", n);
  T* mp = inout<T>(m, "exp_avg", n);
  T* vp = inout<T>(v, "exp_avg_sq", n);
  T* vmaxp = inout_opt<T>(vmax, "max_exp_avg_sq", n, h.amsgrad);
  run_kernel("adam_step", {{param, Use::update}, {grad, Use::read}, {m, Use::update}, {v, Use::update}, {vmax, Use::update}},
             {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, double(h.decoupled_weight_decay), double(h.amsgrad),
              h.bias_correction1, h.bias_correction2_sqrt},
             [=](int nt) { adam_step<T>(n, p, g, mp, vp, vmaxp, h, nt); });
}

template <class T>
void rmsprop_py(py::array& param, const py::array& grad, py::array& s, const py::object& buf,
                const py::object& a, const RmspropHyper& h) {
  const int64_t n = view_out<T>(param, "param").size();
  T* p = inout<T>(param, "param", n);
  const T* g = input<T>(grad, "grad", n);
  T* sp = inout<T>(s, "square_avg", n);
  T* bp = inout_opt<T>(buf, "momentum_buffer", n, h.momentum > 0.0);
  T* ap = inout_opt<T>(a, "grad_avg", n, h.centered);
  run_kernel("rmsprop_step", {{param, Use::update}, {grad, Use::read}, {s, Use::update}, {buf, Use::update}, {a, Use::update}},
             {h.lr, h.alpha, h.eps, h.weight_decay, h.momentum, double(h.centered)},
             [=](int nt) { rmsprop_step<T>(n, p, g, sp, bp, ap, h, nt); });
}

// ---- multi-tensor updates: one call per parameter group (PyTorch's foreach path) ----
//
// The hyperparameters come in a float64 array that each call reads when it runs, so a captured step
// (nnx.compile) replays with the learning rate and step counts the optimizer writes there before each replay.

// The parameters of one group, each with its gradient and up to three state arrays (null where absent).
template <class T>
struct Group {
  std::vector<int64_t> n;
  std::vector<T*> p;
  std::vector<const T*> g;
  std::vector<T*> s[3];
  std::vector<ArrayUse> uses;
};

std::string nth(const char* name, size_t i) { return std::string(name) + "[" + std::to_string(i) + "]"; }

// lists[0] = params, lists[1] = grads, lists[2..] = state lists (or None: no such state in this group).
template <class T>
Group<T> make_group(const py::list& params, const py::list& grads, std::initializer_list<std::pair<py::object, const char*>> states) {
  Group<T> gr;
  const size_t k = params.size();
  NNX_REQUIRE(grads.size() == k, "grads: expected " + std::to_string(k) + " arrays (one per param), got " +
                                 std::to_string(grads.size()));
  int si = 0;
  std::vector<py::list> state_lists;
  for (const auto& st : states) {
    if (!st.first.is_none()) {
      py::list l = py::cast<py::list>(st.first);
      NNX_REQUIRE(l.size() == k,
                  std::string(st.second) + ": expected " + std::to_string(k) + " entries (one per param)");
      state_lists.push_back(l);
    } else {
      state_lists.push_back(py::list());
    }
    ++si;
  }
  for (size_t i = 0; i < k; ++i) {
    py::array pa = py::cast<py::array>(params[i]);
    const std::string pn = nth("params", i);
    const int64_t n = view_out<T>(pa, pn.c_str()).size();
    gr.n.push_back(n);
    gr.p.push_back(inout<T>(pa, pn.c_str(), n));
    gr.uses.push_back({params[i], Use::update});
    py::array ga = py::cast<py::array>(grads[i]);
    gr.g.push_back(input<T>(ga, nth("grads", i).c_str(), n));
    gr.uses.push_back({grads[i], Use::read});
    si = 0;
    for (const auto& st : states) {
      T* ptr = nullptr;
      if (state_lists[si].size() == k && !state_lists[si][i].is_none()) {
        py::array sa = py::cast<py::array>(state_lists[si][i]);
        ptr = inout<T>(sa, nth(st.second, i).c_str(), n);
        gr.uses.push_back({state_lists[si][i], Use::update});
      }
      gr.s[si].push_back(ptr);
      ++si;
    }
  }
  return gr;
}

const double* hyper_array(const py::array& a, int64_t count) {
  auto v = view_in<double>(a, "hyper", 1);
  NNX_REQUIRE(v.size() == count && v.strides[0] == 1,
              "hyper: expected a contiguous float64 array of " + std::to_string(count) + " hyperparameters");
  return v.data;
}

// Thrown when the hyperparameters read at run time need a state array the group was called without.
void need_state(bool ok, const char* what) {
  if (!ok) throw py::value_error(std::string(what) + ": this update needs the state array, got None");
}

template <class T>
void sgd_multi_py(const py::list& params, const py::list& grads, const py::object& bufs, const py::array& hyper) {
  Group<T> gr = make_group<T>(params, grads, {{bufs, "momentum_buffers"}});
  const double* h = hyper_array(hyper, 6);
  gr.uses.push_back({hyper, Use::read});
  const auto n = gr.n;
  const auto p = gr.p;
  const auto g = gr.g;
  const auto b = gr.s[0];
  run_kernel("sgd_step_multi", gr.uses, {}, [=](int nt) {
    const SgdHyper hy{h[0], h[1], h[2], h[3], h[4] != 0.0, h[5] != 0.0};
    for (size_t i = 0; i < p.size(); ++i) {
      need_state(hy.momentum == 0.0 || b[i] != nullptr, "momentum_buffers");
      sgd_step<T>(n[i], p[i], g[i], b[i], hy, nt);
    }
  });
}

template <class T>
void adam_multi_py(const py::list& params, const py::list& grads, const py::list& m, const py::list& v,
                   const py::object& vmax, const py::array& hyper) {
  Group<T> gr = make_group<T>(params, grads, {{m, "exp_avgs"}, {v, "exp_avg_sqs"}, {vmax, "max_exp_avg_sqs"}});
  const double* h = hyper_array(hyper, 9);
  gr.uses.push_back({hyper, Use::read});
  const auto n = gr.n;
  const auto p = gr.p;
  const auto g = gr.g;
  const auto s0 = gr.s[0], s1 = gr.s[1], s2 = gr.s[2];
  run_kernel("adam_step_multi", gr.uses, {}, [=](int nt) {
    const AdamHyper hy{h[0], h[1], h[2], h[3], h[4], h[5] != 0.0, h[6] != 0.0, h[7], h[8]};
    for (size_t i = 0; i < p.size(); ++i) {
      need_state(s0[i] != nullptr && s1[i] != nullptr, "exp_avgs, exp_avg_sqs");
      need_state(!hy.amsgrad || s2[i] != nullptr, "max_exp_avg_sqs");
      adam_step<T>(n[i], p[i], g[i], s0[i], s1[i], s2[i], hy, nt);
    }
  });
}

template <class T>
void rmsprop_multi_py(const py::list& params, const py::list& grads, const py::list& sq, const py::object& bufs,
                      const py::object& avgs, const py::array& hyper) {
  Group<T> gr = make_group<T>(params, grads, {{sq, "square_avgs"}, {bufs, "momentum_buffers"}, {avgs, "grad_avgs"}});
  const double* h = hyper_array(hyper, 6);
  gr.uses.push_back({hyper, Use::read});
  const auto n = gr.n;
  const auto p = gr.p;
  const auto g = gr.g;
  const auto s0 = gr.s[0], s1 = gr.s[1], s2 = gr.s[2];
  run_kernel("rmsprop_step_multi", gr.uses, {}, [=](int nt) {
    const RmspropHyper hy{h[0], h[1], h[2], h[3], h[4], h[5] != 0.0};
    for (size_t i = 0; i < p.size(); ++i) {
      need_state(s0[i] != nullptr, "square_avgs");
      need_state(hy.momentum <= 0.0 || s1[i] != nullptr, "momentum_buffers");
      need_state(!hy.centered || s2[i] != nullptr, "grad_avgs");
      rmsprop_step<T>(n[i], p[i], g[i], s0[i], s1[i], s2[i], hy, nt);
    }
  });
}

template <class T>
void adagrad_multi_py(const py::list& params, const py::list& grads, const py::list& sums, const py::array& hyper) {
  Group<T> gr = make_group<T>(params, grads, {{sums, "state_sums"}});
  const double* h = hyper_array(hyper, 4);
  gr.uses.push_back({hyper, Use::read});
  const auto n = gr.n;
  const auto p = gr.p;
  const auto g = gr.g;
  const auto s0 = gr.s[0];
  run_kernel("adagrad_step_multi", gr.uses, {}, [=](int nt) {
    const AdagradHyper hy{h[0], h[1], h[2], h[3]};
    for (size_t i = 0; i < p.size(); ++i) {
      need_state(s0[i] != nullptr, "state_sums");
      adagrad_step<T>(n[i], p[i], g[i], s0[i], hy, nt);
    }
  });
}

template <class T>
void adadelta_multi_py(const py::list& params, const py::list& grads, const py::list& sq, const py::list& acc,
                       const py::array& hyper) {
  Group<T> gr = make_group<T>(params, grads, {{sq, "square_avgs"}, {acc, "acc_deltas"}});
  const double* h = hyper_array(hyper, 4);
  gr.uses.push_back({hyper, Use::read});
  const auto n = gr.n;
  const auto p = gr.p;
  const auto g = gr.g;
  const auto s0 = gr.s[0], s1 = gr.s[1];
  run_kernel("adadelta_step_multi", gr.uses, {}, [=](int nt) {
    const AdadeltaHyper hy{h[0], h[1], h[2], h[3]};
    for (size_t i = 0; i < p.size(); ++i) {
      need_state(s0[i] != nullptr && s1[i] != nullptr, "square_avgs, acc_deltas");
      adadelta_step<T>(n[i], p[i], g[i], s0[i], s1[i], hy, nt);
    }
  });
}

bool list_f32(const py::list& params) {
  NNX_REQUIRE(params.size() > 0, "params: expected at least one parameter");
  return is_f32(py::cast<py::array>(params[0]));
}

template <class T>
void adagrad_py(py::array& param, const py::array& grad, py::array& s, const AdagradHyper& h) {
  const int64_t n = view_out<T>(param, "param").size();
  T* p = inout<T>(param, "param", n);
  const T* g = input<T>(grad, "grad", n);
  T* sp = inout<T>(s, "state_sum", n);
  refuse_capture("adagrad_step: Adagrad updates each parameter by its own call, which a captured step cannot "
                 "replay (it runs eagerly)");
  py::gil_scoped_release release;
  adagrad_step<T>(n, p, g, sp, h, num_threads());
}

template <class T>
void adadelta_py(py::array& param, const py::array& grad, py::array& s, py::array& u, const AdadeltaHyper& h) {
  const int64_t n = view_out<T>(param, "param").size();
  T* p = inout<T>(param, "param", n);
  const T* g = input<T>(grad, "grad", n);
  T* sp = inout<T>(s, "square_avg", n);
  T* up = inout<T>(u, "acc_delta", n);
  refuse_capture("adadelta_step: Adadelta updates each parameter by its own call, which a captured step cannot "
                 "replay (it runs eagerly)");
  py::gil_scoped_release release;
  adadelta_step<T>(n, p, g, sp, up, h, num_threads());
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("sgd_step",
        [](py::array& param, const py::array& grad, const py::object& buf, double lr, double momentum,
           double dampening, double weight_decay, bool nesterov, bool first_step) {
          SgdHyper h{lr, momentum, dampening, weight_decay, nesterov, first_step};
          if (is_f32(param)) sgd_py<float>(param, grad, buf, h);
          else sgd_py<double>(param, grad, buf, h);
        },
        py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"), py::arg("lr"), py::arg("momentum"),
        py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"), py::arg("first_step"),
        "SGD update of param (and momentum_buffer) in place; see cpp/optim/optim.h.");
  m.def("adam_step",
        [](py::array& param, const py::array& grad, py::array& exp_avg, py::array& exp_avg_sq,
           const py::object& max_exp_avg_sq, double lr, double beta1, double beta2, double eps,
           double weight_decay, bool decoupled, bool amsgrad, double bias_correction1,
           double bias_correction2_sqrt) {
          AdamHyper h{lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, bias_correction1,
                      bias_correction2_sqrt};
          if (is_f32(param)) adam_py<float>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, h);
          else adam_py<double>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, h);
        },
        py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("decoupled"), py::arg("amsgrad"), py::arg("bias_correction1"), py::arg("bias_correction2_sqrt"),
        "Adam/AdamW update of param and its moments in place; see cpp/optim/optim.h.");
  m.def("rmsprop_step",
        [](py::array& param, const py::array& grad, py::array& square_avg, const py::object& buf,
           const py::object& grad_avg, double lr, double alpha, double eps, double weight_decay, double momentum,
           bool centered) {
          RmspropHyper h{lr, alpha, eps, weight_decay, momentum, centered};
          if (is_f32(param)) rmsprop_py<float>(param, grad, square_avg, buf, grad_avg, h);
          else rmsprop_py<double>(param, grad, square_avg, buf, grad_avg, h);
        },
        py::arg("param"), py::arg("grad"), py::arg("square_avg"), py::arg("momentum_buffer"), py::arg("grad_avg"),
        py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"), py::arg("momentum"),
        py::arg("centered"), "RMSprop update of param and its state in place; see cpp/optim/optim.h.");
  m.def("adagrad_step",
        [](py::array& param, const py::array& grad, py::array& state_sum, double lr, double eps,
           double weight_decay, double clr) {
          AdagradHyper h{lr, eps, weight_decay, clr};
          if (is_f32(param)) adagrad_py<float>(param, grad, state_sum, h);
          else adagrad_py<double>(param, grad, state_sum, h);
        },
        py::arg("param"), py::arg("grad"), py::arg("state_sum"), py::arg("lr"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("clr"), "Adagrad update of param and state_sum in place; see cpp/optim/optim.h.");
  m.def("adadelta_step",
        [](py::array& param, const py::array& grad, py::array& square_avg, py::array& acc_delta, double lr,
           double rho, double eps, double weight_decay) {
          AdadeltaHyper h{lr, rho, eps, weight_decay};
          if (is_f32(param)) adadelta_py<float>(param, grad, square_avg, acc_delta, h);
          else adadelta_py<double>(param, grad, square_avg, acc_delta, h);
        },
        py::arg("param"), py::arg("grad"), py::arg("square_avg"), py::arg("acc_delta"), py::arg("lr"), py::arg("rho"),
        py::arg("eps"), py::arg("weight_decay"), "Adadelta update of param and its state in place; see cpp/optim/optim.h.");
  m.def("adagrad_step_multi",
        [](const py::list& params, const py::list& grads, const py::list& state_sums, const py::array& hyper) {
          if (list_f32(params)) adagrad_multi_py<float>(params, grads, state_sums, hyper);
          else adagrad_multi_py<double>(params, grads, state_sums, hyper);
        },
        py::arg("params"), py::arg("grads"), py::arg("state_sums"), py::arg("hyper"),
        "Adagrad update of a parameter group; hyper = float64 [lr, eps, weight_decay, clr], read when it runs.");
  m.def("adadelta_step_multi",
        [](const py::list& params, const py::list& grads, const py::list& square_avgs, const py::list& acc_deltas,
           const py::array& hyper) {
          if (list_f32(params)) adadelta_multi_py<float>(params, grads, square_avgs, acc_deltas, hyper);
          else adadelta_multi_py<double>(params, grads, square_avgs, acc_deltas, hyper);
        },
        py::arg("params"), py::arg("grads"), py::arg("square_avgs"), py::arg("acc_deltas"), py::arg("hyper"),
        "Adadelta update of a parameter group; hyper = float64 [lr, rho, eps, weight_decay], read when it runs.");
  m.def("sgd_step_multi",
        [](const py::list& params, const py::list& grads, const py::object& bufs, const py::array& hyper) {
          if (list_f32(params)) sgd_multi_py<float>(params, grads, bufs, hyper);
          else sgd_multi_py<double>(params, grads, bufs, hyper);
        },
        py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("hyper"),
        "sgd_step on every param of a group; hyper = float64 [lr, momentum, dampening, weight_decay, nesterov, "
        "first_step], read when the call runs.");
  m.def("adam_step_multi",
        [](const py::list& params, const py::list& grads, const py::list& m1, const py::list& v,
           const py::object& vmax, const py::array& hyper) {
          if (list_f32(params)) adam_multi_py<float>(params, grads, m1, v, vmax, hyper);
          else adam_multi_py<double>(params, grads, m1, v, vmax, hyper);
        },
        py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("max_exp_avg_sqs"),
        py::arg("hyper"),
        "adam_step on every param of a group; hyper = float64 [lr, beta1, beta2, eps, weight_decay, decoupled, "
        "amsgrad, bias_correction1, bias_correction2_sqrt].");
  m.def("rmsprop_step_multi",
        [](const py::list& params, const py::list& grads, const py::list& sq, const py::object& bufs,
           const py::object& avgs, const py::array& hyper) {
          if (list_f32(params)) rmsprop_multi_py<float>(params, grads, sq, bufs, avgs, hyper);
          else rmsprop_multi_py<double>(params, grads, sq, bufs, avgs, hyper);
        },
        py::arg("params"), py::arg("grads"), py::arg("square_avgs"), py::arg("momentum_buffers"), py::arg("grad_avgs"),
        py::arg("hyper"),
        "rmsprop_step on every param of a group; hyper = float64 [lr, alpha, eps, weight_decay, momentum, centered].");
}

}  // namespace nnx
