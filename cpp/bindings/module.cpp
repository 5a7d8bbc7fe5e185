#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "common/block_cache.h"
#include "common/cpu.h"
#include "common/malloc_tuning.h"
#include "common/stream_store.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "gemm/gemm.h"

namespace py = pybind11;

namespace {

// The base of a result whose memory came from the block cache: gives the block back when the array (and every
// view of it) is gone.
struct CachedBlock {
  void* block = nullptr;
  size_t capacity = 0;
  CachedBlock() = default;
  CachedBlock(const CachedBlock&) = delete;
  CachedBlock& operator=(const CachedBlock&) = delete;
  ~CachedBlock() { nnx::block_cache_give(block, capacity); }
};

}  // namespace

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

  py::class_<CachedBlock>(m, "CachedBlock",
                          "The base of a large result (nnx._args.empty): its memory, given back to the block cache "
                          "when the result and its views are gone.");
  m.attr("BLOCK_CACHE_MIN_BYTES") = py::int_(nnx::kBlockCacheMinBytes);
  // Results from this size up are written past the caches (common/stream_store.h); the tests read it.
  m.attr("STREAM_STORE_MIN_BYTES") = py::int_(nnx::kStreamStoreMinBytes);
  m.def("empty_cached", [](const std::vector<py::ssize_t>& shape, const py::dtype& dt) {
          const size_t bytes = nnx::c_array_bytes(shape, dt, "empty_cached");
          auto owner = std::make_unique<CachedBlock>();
          owner->block = nnx::block_cache_take(bytes, &owner->capacity);
          if (owner->block == nullptr) throw std::bad_alloc();
          void* data = owner->block;
          return nnx::c_array_on(data, shape, dt, py::cast(owner.release(), py::return_value_policy::take_ownership));
        },
        py::arg("shape"), py::arg("dtype"),
        "An uninitialised C-contiguous array whose memory comes from the block cache (common/block_cache.h).");
  m.def("block_cache_kept_bytes", &nnx::block_cache_kept_bytes,
        "Bytes of large-result blocks kept for reuse (no live array uses them).");
  m.def("block_cache_limit", &nnx::block_cache_limit, "The most bytes of blocks the cache keeps for reuse.");
  m.def("set_block_cache_limit", [](py::ssize_t n) {
          if (n < 0) throw py::value_error("n: expected a byte count >= 0, got " + std::to_string(n));
          nnx::block_cache_set_limit(static_cast<size_t>(n));
        },
        py::arg("n"), "Sets the cache's limit, freeing the kept blocks past it (0: keep none).");

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
