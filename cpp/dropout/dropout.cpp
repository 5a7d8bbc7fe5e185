// Driver of the dropout family: splits [0, n) across threads (any split gives the same bits, the mask
// depends on the element index only) and at multiples of 2^32 (where the index's high word changes).
#include "dropout/dropout.h"

#include <algorithm>
#include <cmath>

#include "common/isa_table.h"
#include "common/stream_store.h"
#include "common/threads.h"
#include "dropout/dropout_ukernels.h"

namespace nnx {

template <class T>
const DropoutUkernels<T>& dropout_ukernels() {
  static const IsaTable<DropoutUkernels<T>> table(IsaFills<DropoutUkernels<T>>{
      dropout_ukernels_fill_portable<T>, NNX_X86_FILL(dropout_ukernels_fill_avx2<T>),
      NNX_X86_FILL(dropout_ukernels_fill_avx512<T>)});
  return table.active();
}
template const DropoutUkernels<float>& dropout_ukernels<float>();
template const DropoutUkernels<double>& dropout_ukernels<double>();

DropoutKey dropout_key(uint64_t seed) {
  // splitmix64's output function: nearby seeds give unrelated keys.
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return DropoutKey{static_cast<uint32_t>(z), static_cast<uint32_t>(z >> 32)};
}

uint32_t dropout_threshold(double p) {
  if (!(p > 0)) return 0;
  return static_cast<uint32_t>(std::min(4294967295.0, std::floor(p * 4294967296.0)));
}

template <class T>
void dropout_apply(const T* x, T* y, int64_t n, DropoutKey key, uint32_t threshold, T scale, int nthreads) {
  const auto& k = dropout_ukernels<T>();
  constexpr int64_t kAlign = 64;  // ranges start on a cache line
  const bool past_caches = stores_past_caches(n * static_cast<int64_t>(sizeof(T)), x == y);
  parallel_for(n, kElementwiseGrain, nthreads, [&](int64_t b, int64_t e) {
    while (b < e) {
      const int64_t next_word = (b / (int64_t{1} << 32) + 1) * (int64_t{1} << 32);
      const int64_t stop = std::min(e, next_word);
      k.apply(x + b, y + b, stop - b, static_cast<uint64_t>(b), key.k0, key.k1, threshold, scale, past_caches);
      b = stop;
    }
    if (past_caches) stream_fence();
  }, kAlign);
}

template <class T>
void dropout_apply_save(const T* x, T* y, uint8_t* bits, int64_t n, DropoutKey key, uint32_t threshold, T scale,
                        int nthreads) {
  const auto& k = dropout_ukernels<T>();
  constexpr int64_t kAlign = 64;  // ranges start on a cache line, and on a byte of bits
  const bool past_caches = stores_past_caches(n * static_cast<int64_t>(sizeof(T)), x == y);
  parallel_for(n, kElementwiseGrain, nthreads, [&](int64_t b, int64_t e) {
    while (b < e) {
      const int64_t next_word = (b / (int64_t{1} << 32) + 1) * (int64_t{1} << 32);
      const int64_t stop = std::min(e, next_word);
      k.apply_save(x + b, y + b, bits + b / 8, stop - b, static_cast<uint64_t>(b), key.k0, key.k1, threshold, scale,
                   past_caches);
      b = stop;
    }
    if (past_caches) stream_fence();
  }, kAlign);
}

template <class T>
void dropout_apply_bits(const T* dy, T* dx, const uint8_t* bits, int64_t n, T scale, int nthreads) {
  const auto& k = dropout_ukernels<T>();
  const bool past_caches = stores_past_caches(n * static_cast<int64_t>(sizeof(T)), dy == dx);
  parallel_for(n, kElementwiseGrain, nthreads, [&](int64_t b, int64_t e) {
    k.apply_from_bits(dy + b, dx + b, bits + b / 8, e - b, scale, past_caches);
    if (past_caches) stream_fence();
  }, 64);
}

template <class T>
const char* dropout_ukernel_name() {
  return dropout_ukernels<T>().name;
}

template void dropout_apply<float>(const float*, float*, int64_t, DropoutKey, uint32_t, float, int);
template void dropout_apply<double>(const double*, double*, int64_t, DropoutKey, uint32_t, double, int);
template void dropout_apply_save<float>(const float*, float*, uint8_t*, int64_t, DropoutKey, uint32_t, float, int);
template void dropout_apply_save<double>(const double*, double*, uint8_t*, int64_t, DropoutKey, uint32_t, double,
                                         int);
template void dropout_apply_bits<float>(const float*, float*, const uint8_t*, int64_t, float, int);
template void dropout_apply_bits<double>(const double*, double*, const uint8_t*, int64_t, double, int);
template const char* dropout_ukernel_name<float>();
template const char* dropout_ukernel_name<double>();

}  // namespace nnx
