// The GEMM epilogue on one finished tile of C, written so the compiler vectorises it for the ISA of the
// file that includes it (one copy per ISA, kept apart by the anonymous namespace). Same arithmetic as
// nnx::apply_epilogue (v + bias, then the activation's scalar definition), so results do not depend on
// which of the two ran.
#pragma once
#include <cstdint>

#include "common/epilogue.h"

namespace nnx {
namespace {

// Returns false, doing nothing, where the caller must finish the tile itself (gemm.cpp's epilogue_rest):
// sigmoid and tanh (the activation family's kernels) and strided C. It deliberately calls no inline function
// of a shared header: such a function compiled here with AVX2 flags could be the copy the linker keeps for
// baseline callers.
template <class T>
bool epilogue_tile(const Epilogue<T>& ep, int64_t row0, int64_t col0, int64_t m, int64_t n, T* c,
                   int64_t rs_c, int64_t cs_c) {
  if (cs_c != 1 || ep.act == Act::sigmoid || ep.act == Act::tanh) return false;
  const T slope = ep.slope;
  for (int64_t i = 0; i < m; ++i) {
    T* __restrict ci = c + i * rs_c;
    if (ep.bias && ep.bias_per_row) {
      const T bv = ep.bias[row0 + i];
      for (int64_t j = 0; j < n; ++j) ci[j] += bv;
    } else if (ep.bias) {
      const T* __restrict bj = ep.bias + col0;
      for (int64_t j = 0; j < n; ++j) ci[j] += bj[j];
    }
    if (ep.act == Act::relu) {
      for (int64_t j = 0; j < n; ++j) ci[j] = ci[j] < T(0) ? T(0) : ci[j];
    } else if (ep.act == Act::leaky_relu) {
      for (int64_t j = 0; j < n; ++j) ci[j] = ci[j] < T(0) ? ci[j] * slope : ci[j];
    }
  }
  return true;
}

}  // namespace
}  // namespace nnx
