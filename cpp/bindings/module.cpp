#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "common/cpu.h"
#include "common/malloc_tuning.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "gemm/gemm.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "nnx kernels (C++, OpenMP, SIMD)";
  nnx::tune_malloc_for_training();

  m.def("cpu_info", [] {
    py::dict d;
    d["detected_isa"] = nnx::isa_name(nnx::detected_isa());
    d["active_isa"] = nnx::isa_name(nnx::active_isa());
    d["openmp"] = nnx::openmp_enabled();
    d["num_threads"] = nnx::num_threads();
    d["malloc_tuned"] = nnx::malloc_tuned();
    d["wide_vector_fma"] = nnx::wide_vector_fma();
    d["fma512_rate_ratio"] = nnx::fma512_rate_ratio();
    d["sgemm_ukernel"] = nnx::gemm_ukernel_name<float>();
    d["dgemm_ukernel"] = nnx::gemm_ukernel_name<double>();
    return d;
  });
  m.def("set_isa", [](const std::string& name) {
    nnx::Isa isa;
    if (!nnx::parse_isa(name, &isa))
      throw py::value_error("isa: expected one of 'portable', 'avx2', 'avx512', 'neon', got '" + name + "'");
    if (!nnx::isa_supported(isa))
      throw py::value_error("isa: '" + name + "' is not supported on this CPU (best: " +
                            nnx::isa_name(nnx::detected_isa()) + ")");
    return std::string(nnx::isa_name(nnx::set_active_isa(isa)));
  });
  m.def("get_num_threads", &nnx::num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("n: expected a thread count >= 1, got " + std::to_string(n));
    nnx::set_num_threads(n);
  });
  m.def("workspace_bytes", &nnx::workspace_bytes, "Bytes of kernel scratch memory held by all threads.");

  nnx::bind_gemm(m);
  nnx::bind_activation(m);
  nnx::bind_loss(m);
  nnx::bind_conv(m);
  nnx::bind_pool(m);
  nnx::bind_optim(m);
  nnx::bind_norm(m);
  nnx::bind_dropout(m);
  nnx::bind_maxout(m);
  nnx::bind_rnn(m);
  nnx::bind_layout(m);
  nnx::bind_compile(m);
}
