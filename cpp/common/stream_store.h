// When an element-wise kernel writes its result past the caches (non-temporal stores) instead of through them.
//
// A store to a line that is not in the cache first reads the line from memory (to own it), so an ordinary
// result written to memory moves three bytes for each two of a copy, whose library routine streams. Streaming
// stores skip that read, but leave nothing in the caches for the next reader: worth it only for results too big
// to be found there anyway. Measured on Zen 4 (32 MiB of L3, 1 thread, relu of x into y, medians of 15): alone,
// streaming ran 1.4-1.5x faster from 8 MiB of y (0.6-0.9x at 2-4 MiB); relu followed by a relu that reads y,
// 0.5-0.6x at 2 MiB, 0.6-1.0x at 4 MiB, 1.0-1.3x from 8 MiB with one 0.82x at 24 MiB. So from this many bytes
// of one call's result, the result of a call that does not write over its input (an in-place result's lines
// are already cached: it read them).
// The activation family streams this way (activation_generic.h's map1 / map2 and softmax rows), and layer norm's
// forward (norm_generic.h's ln_apply); A/B in one process,
// 16 M floats, 1 thread: ReLU 1.42-1.48x, the ReLU and sigmoid backwards 1.40-1.46x, the softmax backward from
// its output 1.23-1.25x, sigmoid and tanh (bound by their arithmetic) 0.98-1.04x; softmax rows of 1000 and 1024
// 0.84-1.47x (ahead in 5 runs of 7), of 256 and 2000 0.91-0.97x, and 1.03-1.38x at 2 threads.
// Where an element lands in memory never changes its value: the bits are those of ordinary stores.
#pragma once
#include <cstdint>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace nnx {

constexpr int64_t kStreamStoreMinBytes = int64_t{16} << 20;

// How far ahead of its loads a kernel streaming through memory asks for lines (software prefetch into L2) where
// its arithmetic per element leaves the hardware's stream prefetch behind: the activation maps and row kernels
// (activation_generic.h), the dropout masks (dropout_ukernels_avx512.cpp), the BCE-with-logits sum
// (loss_ukernels_avx2.cpp). 8 KiB measured best for each on the full-width AVX-512 Xeon; the figures are beside
// each use.
constexpr int64_t kPrefetchAheadBytes = 8192;

inline bool stores_past_caches(int64_t result_bytes, bool in_place) {
  return !in_place && result_bytes >= kStreamStoreMinBytes;
}

// A kernel that computes its result into an L1 buffer and streams it out (activation_generic.h's stream_pieces,
// dropout_stream.h) does so this many bytes at a time, at most kStreamChunkMaxBytes (the buffer's size). Zen 4:
// 2048 (streaming stores issued from the computing loop itself ran the exponential maps 1.15-2.3x slower, 1
// thread, 16 M floats). The full-width AVX-512 Xeon (cpu.h's wide_vector_fma) interleaves its bursts of
// streaming stores with the arithmetic more finely: 512 bytes, with activation_generic.h's map prefetch, against
// 2048 without it (one process, alternated calls, 1 thread, 16 M floats): sigmoid 1.29x, tanh 1.29x, ReLU 1.15x;
// 64 x 32 x 56 x 56 sigmoid 1.32x, tanh 1.18x, ReLU even; 256 bytes measured a little below 512 (sigmoid 1.21x
// against 1.25x, tanh 1.25x against 1.33x in one run). Where a chunk ends never changes a value.
constexpr int64_t kStreamChunkMaxBytes = 2048;
int64_t stream_chunk_bytes();

// Orders a thread's streaming stores before its later stores, for a driver whose kernel entries stream piece by
// piece (one call per row) and fence once per range of them. SSE's sfence is in every x86-64 CPU; elsewhere no
// kernel streams.
inline void stream_fence() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_sfence();
#endif
}

}  // namespace nnx
