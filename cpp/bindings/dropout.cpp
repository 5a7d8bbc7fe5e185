// Bindings of the dropout family. The ops layer (python/nnx/ops/dropout.py) has checked p, the seed and
// the dtype and made x C-contiguous.
#include <pybind11/numpy.h>

#include <string>
#include <vector>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "dropout/dropout.h"

namespace nnx {
namespace {

// The mask's seed: an int, or a one-element uint64 array read when the kernel runs (a captured step draws a
// new seed from nnx's generator into it before each replay, as the eager step draws one per call).
struct Seed {
  uint64_t value = 0;
  const uint64_t* at = nullptr;
};

Seed seed_of(const py::object& o) {
  Seed s;
  if (py::isinstance<py::array>(o)) {
    py::array a = py::cast<py::array>(o);
    NNX_REQUIRE(a.dtype().kind() == 'u' && a.itemsize() == 8 && a.size() == 1 && a.ndim() == 1,
                "seed: expected an int or a one-element uint64 array");
    s.at = static_cast<const uint64_t*>(a.data());
  } else {
    s.value = py::cast<uint64_t>(o);
  }
  return s;
}

template <class T>
void apply_py(const py::array& x, py::array& out, double p, const py::object& seed) {
  auto X = view_in<T>(x, "x");
  auto Y = view_out<T>(out, "out");
  NNX_REQUIRE(X.contiguous(), "x: expected a C-contiguous array");
  NNX_REQUIRE(X.size() == Y.size(), "out: expected as many elements as x");
  NNX_REQUIRE(p >= 0 && p <= 1, "p: expected a dropout probability in [0, 1], got " + std::to_string(p));
  // p == 1 drops everything: every element is multiplied by 0 (a NaN stays NaN, as in PyTorch).
  const uint32_t thr = p < 1 ? dropout_threshold(p) : 0;
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  const Seed sd = seed_of(seed);
  const T* px = X.data;
  T* py_ = Y.data;
  const int64_t n = X.size();
  std::vector<double> attrs{p};
  if (sd.at == nullptr) attrs.push_back(static_cast<double>(sd.value));  // a fixed seed is part of the call
  run_kernel("dropout", {{x, Use::read}, {sd.at != nullptr ? seed : py::none(), Use::read}, {out, Use::write}},
             std::move(attrs), [=](int nt) {
               const DropoutKey key = dropout_key(sd.at != nullptr ? *sd.at : sd.value);
               dropout_apply<T>(px, py_, n, key, thr, scale, nt);
             });
}

// uint8 C-contiguous array of ceil(n / 8) bytes: the saved mask bits of n elements.
uint8_t* bits_ptr(py::array& a, int64_t n, bool writable) {
  if (a.dtype().kind() != 'u' || a.itemsize() != 1)  // the message only on failure: str(dtype) runs Python
    throw py::value_error("mask: expected a uint8 array, got " + std::string(py::str(a.dtype())));
  NNX_REQUIRE(a.ndim() == 1 && a.shape(0) == (n + 7) / 8,
              "mask: expected shape (" + std::to_string((n + 7) / 8) + ",), one bit per element of x");
  NNX_REQUIRE((a.flags() & py::array::c_style) != 0, "mask: expected a C-contiguous array");
  NNX_REQUIRE(!writable || a.writeable(), "mask: output array is read-only");
  return static_cast<uint8_t*>(writable ? a.mutable_data() : const_cast<void*>(a.data()));
}

template <class T>
void save_py(const py::array& x, py::array& out, py::array& mask, double p, const py::object& seed) {
  auto X = view_in<T>(x, "x");
  auto Y = view_out<T>(out, "out");
  NNX_REQUIRE(X.contiguous(), "x: expected a C-contiguous array");
  NNX_REQUIRE(X.size() == Y.size(), "out: expected as many elements as x");
  NNX_REQUIRE(p >= 0 && p <= 1, "p: expected a dropout probability in [0, 1], got " + std::to_string(p));
  // p == 1: the saved bits are the hash's (kept only where it is 2^32 - 1), as nnx.reference's; every element
  // is multiplied by 0 either way.
  const uint32_t thr = dropout_threshold(p);
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  const Seed sd = seed_of(seed);
  const T* px = X.data;
  T* py_ = Y.data;
  const int64_t n = X.size();
  uint8_t* bits = bits_ptr(mask, n, true);
  std::vector<double> attrs{p};
  if (sd.at == nullptr) attrs.push_back(static_cast<double>(sd.value));
  run_kernel("dropout_save",
             {{x, Use::read}, {sd.at != nullptr ? seed : py::none(), Use::read}, {out, Use::write},
              {mask, Use::write}},
             std::move(attrs), [=](int nt) {
               const DropoutKey key = dropout_key(sd.at != nullptr ? *sd.at : sd.value);
               dropout_apply_save<T>(px, py_, bits, n, key, thr, scale, nt);
             });
}

template <class T>
void from_bits_py(const py::array& dy, py::array& mask, py::array& out, double p) {
  auto DY = view_in<T>(dy, "dy");
  auto DX = view_out<T>(out, "out");
  NNX_REQUIRE(DY.contiguous(), "dy: expected a C-contiguous array");
  NNX_REQUIRE(DY.size() == DX.size(), "out: expected as many elements as dy");
  NNX_REQUIRE(p >= 0 && p <= 1, "p: expected a dropout probability in [0, 1], got " + std::to_string(p));
  const T scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  const int64_t n = DY.size();
  const uint8_t* bits = bits_ptr(mask, n, false);
  const T* pdy = DY.data;
  T* pdx = DX.data;
  run_kernel("dropout_from_mask", {{dy, Use::read}, {mask, Use::read}, {out, Use::write}}, {p},
             [=](int nt) { dropout_apply_bits<T>(pdy, pdx, bits, n, scale, nt); });
}

}  // namespace

void bind_dropout(py::module_& m) {
  m.def("dropout_save",
        [](const py::array& x, py::array& out, py::array& mask, double p, const py::object& seed) {
          if (is_f32(x)) save_py<float>(x, out, mask, p, seed);
          else save_py<double>(x, out, mask, p, seed);
        },
        py::arg("x"), py::arg("out"), py::arg("mask"), py::arg("p"), py::arg("seed"),
        "dropout, and the kept bits into mask (uint8, ceil(n / 8); bit j of byte b: element 8b + j).");
  m.def("dropout_from_mask",
        [](const py::array& dy, py::array& mask, py::array& out, double p) {
          if (is_f32(dy)) from_bits_py<float>(dy, mask, out, p);
          else from_bits_py<double>(dy, mask, out, p);
        },
        py::arg("dy"), py::arg("mask"), py::arg("out"), py::arg("p"),
        "out = dy * (bit ? 1 / (1 - p) : 0) from the bits dropout_save saved.");
  m.def("dropout", [](const py::array& x, py::array& out, double p, const py::object& seed) {
          if (is_f32(x)) apply_py<float>(x, out, p, seed);
          else apply_py<double>(x, out, p, seed);
        },
        py::arg("x"), py::arg("out"), py::arg("p"), py::arg("seed"),
        "out = x * mask / (1 - p), the mask a function of (seed, flat index); also the backward (x = dy). seed: an\n"
        "int, or a one-element uint64 array read when the kernel runs.");
  m.def("dropout_ukernel_name", [](bool f32) {
          return std::string(f32 ? dropout_ukernel_name<float>() : dropout_ukernel_name<double>());
        },
        py::arg("f32") = true, "Name of the dropout micro-kernel set the active ISA uses.");
}

}  // namespace nnx
