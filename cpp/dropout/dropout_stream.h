// Dropout's results past the caches (common/stream_store.h): the x86 tables' entries run their kernels a chunk
// at a time into an L1 buffer and stream each chunk out (act_generic::stream_map1), as the activation family's
// maps do. A chunk is a whole number of mask bytes (8 elements), so a chunk's saved bits and hashes are those
// of the same elements in one call: the same values and bits as ordinary stores. Include only from the
// per-ISA kernel files, with that ISA's vector type.
#pragma once
#include <cstdint>

#include "activation/activation_generic.h"

namespace nnx {
namespace dropout_stream {

// compute(i, len, dst) writes the results of elements [i, i + len) to dst; y's n results are written to y,
// streamed past the caches when past_caches (the caller fences).
template <class V, class Compute>
inline void pieces(typename V::T* y, int64_t n, bool past_caches, Compute compute) {
  using T = typename V::T;
  constexpr int64_t kChunk = act_generic::kStreamChunkBytes / static_cast<int64_t>(sizeof(T));
  static_assert(kChunk % 8 == 0, "a chunk holds whole mask bytes");
  if (!past_caches) {
    compute(int64_t{0}, n, y);
    return;
  }
  alignas(64) T buf[kChunk];
  int64_t i = 0;
  for (; i + kChunk <= n; i += kChunk) {
    compute(i, kChunk, +buf);
    act_generic::stream_map1<V>(buf, y + i, kChunk, [](typename V::R v) { return v; });
  }
  if (i < n) compute(i, n - i, y + i);
}

}  // namespace dropout_stream
}  // namespace nnx
