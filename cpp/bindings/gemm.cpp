#include <pybind11/numpy.h>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "gemm/gemm.h"

namespace nnx {
namespace {

template <class T>
void gemm_py(const py::array& a, const py::array& b, py::array& c, double alpha, double beta,
             const py::object& bias, bool bias_per_row, int act, double slope) {
  auto A = view_in<T>(a, "a", 2);
  auto B = view_in<T>(b, "b", 2);
  auto C = view_out<T>(c, "out", 2);
  NNX_REQUIRE(A.shape[1] == B.shape[0], "gemm: inner dimensions differ");
  NNX_REQUIRE(C.shape[0] == A.shape[0] && C.shape[1] == B.shape[1], "gemm: output shape mismatch");
  Epilogue<T> ep;
  auto bias_v = view_opt<T>(bias, "bias", 1);
  if (bias_v.data) {
    NNX_REQUIRE(bias_v.shape[0] == (bias_per_row ? C.shape[0] : C.shape[1]), "gemm: bias length mismatch");
    NNX_REQUIRE(bias_v.strides[0] == 1 || bias_v.shape[0] <= 1, "gemm: bias must be contiguous");
    ep.bias = bias_v.data;
    ep.bias_per_row = bias_per_row;
  }
  NNX_REQUIRE(act >= 0 && act <= 4, "gemm: unknown activation code");
  ep.act = static_cast<Act>(act);
  ep.slope = static_cast<T>(slope);
  const T al = static_cast<T>(alpha), be = static_cast<T>(beta);
  run_kernel("gemm", {{a, Use::read}, {b, Use::read}, {c, beta != 0.0 ? Use::update : Use::write}, {bias, Use::read}},
             {alpha, beta, double(bias_per_row), double(act), slope},
             [=](int nt) {
               gemm<T>(A.shape[0], B.shape[1], A.shape[1], al, A.data, A.strides[0], A.strides[1], B.data,
                       B.strides[0], B.strides[1], be, C.data, C.strides[0], C.strides[1], nt, ep);
             });
}

template <class T>
void matmul_batch_py(const py::array& a, const py::array& b, py::array& c, double alpha) {
  auto A = view_in<T>(a, "a", 3);
  auto B = view_in<T>(b, "b", 3);
  auto C = view_out<T>(c, "out", 3);
  NNX_REQUIRE(A.shape[0] == B.shape[0] && A.shape[0] == C.shape[0], "matmul_batch: batch sizes differ");
  NNX_REQUIRE(A.shape[2] == B.shape[1], "matmul_batch: inner dimensions differ");
  NNX_REQUIRE(C.shape[1] == A.shape[1] && C.shape[2] == B.shape[2], "matmul_batch: output shape mismatch");
  const T al = static_cast<T>(alpha);
  run_kernel("matmul_batch", {{a, Use::read}, {b, Use::read}, {c, Use::write}}, {alpha}, [=](int nt) {
    gemm_batch<T>(A.shape[0], A.shape[1], B.shape[2], A.shape[2], al, A.data, A.strides[0], A.strides[1],
                  A.strides[2], B.data, B.strides[0], B.strides[1], B.strides[2], C.data, C.strides[0], C.strides[1],
                  C.strides[2], nt);
  });
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("gemm", [](const py::array& a, const py::array& b, py::array& c, double alpha, double beta,
                   const py::object& bias, bool bias_per_row, int act, double slope) {
          if (is_f32(a)) gemm_py<float>(a, b, c, alpha, beta, bias, bias_per_row, act, slope);
          else gemm_py<double>(a, b, c, alpha, beta, bias, bias_per_row, act, slope);
        },
        py::arg("a"), py::arg("b"), py::arg("out"), py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        py::arg("bias") = py::none(), py::arg("bias_per_row") = false, py::arg("act") = 0,
        py::arg("slope") = 0.01,
        "out = act(alpha * a @ b + beta * out + bias). a, b any strides; out C-contiguous.");
  // The common call of ops.gemm (two arrays, nothing else) in one step, its result made here: a 64 x 64 x 64
  // product takes about 3 us, and the Python around _C.gemm had added 1 more. Results of more than
  // max_elems elements are refused (ValueError), as is anything gemm_py refuses: ops.gemm then takes its
  // general path, which checks the allocation against the free memory and says what is wrong.
  m.def("matmul", [](const py::array& a, const py::array& b, double alpha, py::ssize_t max_elems) -> py::array {
          NNX_REQUIRE(a.ndim() == 2 && b.ndim() == 2, "matmul: a and b must be 2-D");
          const py::ssize_t m = a.shape(0), n = b.shape(1);
          NNX_REQUIRE(m == 0 || n <= max_elems / m, "matmul: a result this large goes through ops.gemm's checks");
          if (is_f32(a)) {
            py::array c = py::array_t<float>({m, n});
            gemm_py<float>(a, b, c, alpha, 0.0, py::none(), false, 0, 0.0);
            return c;
          }
          py::array c = py::array_t<double>({m, n});
          gemm_py<double>(a, b, c, alpha, 0.0, py::none(), false, 0, 0.0);
          return c;
        },
        py::arg("a"), py::arg("b"), py::arg("alpha"), py::arg("max_elems"),
        "A new C-contiguous alpha * a @ b (a, b 2-D float arrays of one dtype, any strides).");
  m.def("matmul_batch", [](const py::array& a, const py::array& b, py::array& out, double alpha) {
          if (is_f32(a)) matmul_batch_py<float>(a, b, out, alpha);
          else matmul_batch_py<double>(a, b, out, alpha);
        },
        py::arg("a"), py::arg("b"), py::arg("out"), py::arg("alpha") = 1.0,
        "out[i] = alpha * a[i] @ b[i] for 3-D float arrays of one dtype (a, b any strides, 0 included; out "
        "C-contiguous).");
}

}  // namespace nnx
