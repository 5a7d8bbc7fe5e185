// Optimizer steps: update a parameter and its state arrays in place. Every array must be C-contiguous,
// of the parameter's dtype and size, and (except grad) writable; state arrays may be None where the
// kernel's contract allows it.
#include <pybind11/numpy.h>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "common/threads.h"
#include "optim/optim.h"

namespace nnx {
namespace {

template <class T>
T* inout(py::array& a, const char* name, int64_t n) {
  auto v = view_out<T>(a, name);
  require(v.size() == n, std::string(name) + ": expected " + std::to_string(n) + " elements (the size of param), got " +
                             std::to_string(v.size()));
  return v.data;
}

template <class T>
T* inout_opt(const py::object& o, const char* name, int64_t n, bool needed) {
  if (o.is_none()) {
    require(!needed, std::string(name) + ": this update needs the state array, got None");
    return nullptr;
  }
  py::array a = py::cast<py::array>(o);
  return inout<T>(a, name, n);
}

template <class T>
const T* input(const py::array& a, const char* name, int64_t n) {
  auto v = view_in<T>(a, name);
  require(v.contiguous(), std::string(name) + ": expected a C-contiguous array");
  require(v.size() == n, std::string(name) + ": expected " + std::to_string(n) + " elements (the size of param), got " +
                             std::to_string(v.size()));
  return v.data;
}

template <class T>
void sgd_py(py::array& param, const py::array& grad, const py::object& buf, const SgdHyper& h) {
  const int64_t n = view_out<T>(param, "param").size();
  T* p = inout<T>(param, "param", n);
  const T* g = input<T>(grad, "grad", n);
  T* b = inout_opt<T>(buf, "momentum_buffer", n, h.momentum != 0.0);
  py::gil_scoped_release release;
  sgd_step<T>(n, p, g, b, h, num_threads());
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
  py::gil_scoped_release release;
  adam_step<T>(n, p, g, mp, vp, vmaxp, h, num_threads());
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
  py::gil_scoped_release release;
  rmsprop_step<T>(n, p, g, sp, bp, ap, h, num_threads());
}

template <class T>
void adagrad_py(py::array& param, const py::array& grad, py::array& s, const AdagradHyper& h) {
  const int64_t n = view_out<T>(param, "param").size();
  T* p = inout<T>(param, "param", n);
  const T* g = input<T>(grad, "grad", n);
  T* sp = inout<T>(s, "state_sum", n);
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
}

}  // namespace nnx
