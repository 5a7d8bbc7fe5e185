// Reuse of the blocks behind large op results, past the largest size glibc's malloc keeps on its heap.
#pragma once
#include <cstddef>

#include "common/stream_store.h"

namespace nnx {

// malloc_tuning.h keeps blocks up to 32 MiB on the heap; glibc maps every larger one afresh, and the kernel
// zeroes each of its pages on first touch. For a result that size that costs more than the op itself (a ReLU
// over 16 M floats, Zen 4, 1 thread: 9.7 ms with a new 64 MB output, 4.2 ms into an existing one; the page
// faults alone 7.6 ms). So results from this size up (ops' outputs, nnx._args.empty) take their memory from
// here: blocks of dead results are kept, up to a limit in bytes, and handed to the next result of the same
// size class.
// The size is stream_store.h's, from which results are written with streaming stores: those want y on a cache
// line, which the heap's blocks (16 bytes past one as often as not) are not. Row kernels that stream a row at a
// time ran twice as slow onto rows that start off a line (Zen 4, 1 thread, 8192 x 512 floats: layer_norm 1.80-2.06
// ms against 0.87-0.95, softmax 2.3-3.1 against 1.34), whatever x's alignment.
constexpr size_t kBlockCacheMinBytes = static_cast<size_t>(kStreamStoreMinBytes);

// A 64-byte aligned block of at least `bytes`: a kept one of the same size class (whole 2 MiB units), else a
// new one; *capacity receives its size class, which block_cache_give needs back. nullptr when memory runs out.
void* block_cache_take(size_t bytes, size_t* capacity);

// Gives back a block from block_cache_take: kept for reuse if the kept bytes stay within the limit (the oldest
// kept blocks freed to make room), else freed.
void block_cache_give(void* block, size_t capacity);

// Bytes of the blocks kept for reuse (not in use by any result).
size_t block_cache_kept_bytes();

// The limit: 1 GiB unless NNX_BLOCK_CACHE_BYTES says otherwise (0 keeps nothing). Setting it frees the kept
// blocks past the new limit (all of them for 0).
size_t block_cache_limit();
void block_cache_set_limit(size_t bytes);

}  // namespace nnx
