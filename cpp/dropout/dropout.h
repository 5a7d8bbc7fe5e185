// Dropout family: y = x * m with m = scale (kept) or 0 (dropped), the mask a pure function of (seed,
// element index), so forward and backward (the same operation on dy) need no stored mask, and the result
// is bitwise reproducible from the seed whatever the thread count or the order the elements are visited.
//
// The mask bit of flat element i (C order) under seed s:
//   (k0, k1) = low and high 32 bits of splitmix64(s)
//   h = mix32(mix32(lo32(i) ^ k0) ^ (hi32(i) + k1))       mix32: Wellons' "lowbias32" integer hash
//   kept  <=>  h >= threshold,  threshold = min(2^32 - 1, floor(p * 2^32))
// so P(kept) = 1 - threshold / 2^32 (1 - p to within 2^-32). nnx.reference.dropout computes the same bits
// with NumPy's uint32 arithmetic.
#pragma once
#include <cstdint>

namespace nnx {

struct DropoutKey {
  uint32_t k0, k1;
};

DropoutKey dropout_key(uint64_t seed);
uint32_t dropout_threshold(double p);

// y[i] = x[i] * (kept(i) ? scale : 0) for i in [0, n). Forward takes x; backward takes dy (same key).
template <class T>
void dropout_apply(const T* x, T* y, int64_t n, DropoutKey key, uint32_t threshold, T scale, int nthreads);

// The same with the mask saved as bits, so that the backward reads n/8 bytes instead of hashing again:
// bit j of bits[b] is 1 when element 8b + j is kept (np.packbits(kept, bitorder="little")); the bits past n
// in the last byte are 0. Forward: y as dropout_apply, and bits.
template <class T>
void dropout_apply_save(const T* x, T* y, uint8_t* bits, int64_t n, DropoutKey key, uint32_t threshold, T scale,
                        int nthreads);
// Backward from saved bits: dx[i] = dy[i] * (bit i ? scale : 0).
template <class T>
void dropout_apply_bits(const T* dy, T* dx, const uint8_t* bits, int64_t n, T scale, int nthreads);

template <class T>
const char* dropout_ukernel_name();

}  // namespace nnx
