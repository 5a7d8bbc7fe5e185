// The scalar mask hash of dropout.h, for the portable kernel and the seed expansion. Internal linkage in
// every translation unit that includes it, so an ISA-compiled copy can never serve a portable caller.
#pragma once
#include <cstdint>

namespace nnx {
namespace {

inline uint32_t dropout_mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

inline uint32_t dropout_bits(uint64_t i, uint32_t k0, uint32_t k1) {
  return dropout_mix32(dropout_mix32(static_cast<uint32_t>(i) ^ k0) ^ (static_cast<uint32_t>(i >> 32) + k1));
}

}  // namespace
}  // namespace nnx
