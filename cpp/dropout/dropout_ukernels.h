// The per-ISA micro-kernel table of the dropout family (portable scalar; AVX2: 8 hashes or 8 saved bits per
// step; AVX-512, float: 16).
#pragma once
#include <cstdint>

namespace nnx {

template <class T>
struct DropoutUkernels {
  const char* name;
  // y[j] = x[j] * (kept(start + j) ? scale : 0) for j in [0, n); the indices start .. start + n - 1 share
  // their high 32 bits (the driver splits a range at multiples of 2^32). past_caches: y written with streaming
  // stores where the ISA has them (dropout_stream.h; the caller fences), the same values.
  void (*apply)(const T* x, T* y, int64_t n, uint64_t start, uint32_t k0, uint32_t k1, uint32_t threshold, T scale,
                bool past_caches);
  // apply, and the kept bits of elements start .. start + n - 1 into bits[0 .. ceil(n / 8)) (start is a
  // multiple of 8; the bits past n in the last byte are 0).
  void (*apply_save)(const T* x, T* y, uint8_t* bits, int64_t n, uint64_t start, uint32_t k0, uint32_t k1,
                     uint32_t threshold, T scale, bool past_caches);
  // dx[j] = dy[j] * (bit j of bits ? scale : 0) for j in [0, n) (bits: element 0's byte); past_caches as apply's.
  void (*apply_from_bits)(const T* dy, T* dx, const uint8_t* bits, int64_t n, T scale, bool past_caches);
};

// Fills of the one dispatch idiom (common/isa_table.h), each in dropout_ukernels_<isa>.cpp.
template <class T>
void dropout_ukernels_fill_portable(DropoutUkernels<T>& table);
#if defined(NNX_X86)
template <class T>
void dropout_ukernels_fill_avx2(DropoutUkernels<T>& table);
template <class T>
void dropout_ukernels_fill_avx512(DropoutUkernels<T>& table);
#endif

template <class T>
const DropoutUkernels<T>& dropout_ukernels();

}  // namespace nnx
