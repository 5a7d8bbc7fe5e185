// The scalar mask hash of dropout.h, for the portable kernel and the seed expansion, and its constants, which
// the SIMD kernels' lane-wise copies read. Internal linkage in every translation unit that includes it, so an
// ISA-compiled copy can never serve a portable caller.
#pragma once
#include <cstdint>

namespace nnx {
namespace {

// dropout_mix32: x ^= x >> kDropoutMixShift[0]; x *= kDropoutMixMul[0]; x ^= x >> kDropoutMixShift[1];
// x *= kDropoutMixMul[1]; x ^= x >> kDropoutMixShift[2].
constexpr int kDropoutMixShift[3] = {16, 15, 16};
constexpr uint32_t kDropoutMixMul[2] = {0x7feb352dU, 0x846ca68bU};

inline uint32_t dropout_mix32(uint32_t x) {
  x ^= x >> kDropoutMixShift[0];
  x *= kDropoutMixMul[0];
  x ^= x >> kDropoutMixShift[1];
  x *= kDropoutMixMul[1];
  x ^= x >> kDropoutMixShift[2];
  return x;
}

inline uint32_t dropout_bits(uint64_t i, uint32_t k0, uint32_t k1) {
  return dropout_mix32(dropout_mix32(static_cast<uint32_t>(i) ^ k0) ^ (static_cast<uint32_t>(i >> 32) + k1));
}

}  // namespace
}  // namespace nnx
