// The mask hash of dropout.h, written once for the portable kernel, the seed expansion and the SIMD kernels'
// lanes. Internal linkage in every translation unit that includes it, so an ISA-compiled copy can never serve
// a portable caller.
#pragma once
#include <cstdint>

namespace nnx {
namespace {

// Wellons' "lowbias32" on a uint32_t, or on each lane of a GCC vector of them (the AVX2 and AVX-512 kernels
// pass their registers as such): the same integer arithmetic everywhere, so every ISA draws the same masks.
template <class U>
inline U dropout_mix32(U x) {
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
