// Dropout's results past the caches (common/stream_store.h): the x86 tables' entries run their kernels a chunk
// at a time (kDropoutChunkBytes) into an L1 buffer and stream each chunk out (act_generic::stream_map1), as the
// activation family's maps do. A chunk is a whole number of mask bytes (8 elements), so a chunk's saved bits
// and hashes are those of the same elements in one call: the same values and bits as ordinary stores. Include
// only from the per-ISA kernel files, with that ISA's vector type.
#pragma once
#include <cstdint>

#include "activation/activation_generic.h"

namespace nnx {
namespace dropout_stream {

// Chunks start at whole mask bytes of the index, not at y's lines, so where y is not line-aligned each chunk ends
// in a line it shares with the next, stored the ordinary way: at 512-byte chunks (stream_chunk_bytes on the Xeon)
// that measured 0.5x the 2048-byte ones on 4 M floats, so dropout keeps 2048 bytes everywhere.
constexpr int64_t kDropoutChunkBytes = 2048;

// compute(i, len, dst) writes the results of elements [i, i + len) to dst; y's n results are written to y,
// streamed past the caches when past_caches (the caller fences).
template <class V, class Compute>
inline void pieces(typename V::T* y, int64_t n, bool past_caches, Compute compute) {
  using T = typename V::T;
  if (!past_caches) {
    compute(int64_t{0}, n, y);
    return;
  }
  constexpr int64_t kChunk = kDropoutChunkBytes / static_cast<int64_t>(sizeof(T));
  static_assert(kChunk % 8 == 0, "a chunk holds whole mask bytes");
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
