// Reuse of the blocks behind large op results, past the largest size glibc's malloc keeps on its heap.
#pragma once
#include <cstddef>

namespace nnx {

// malloc_tuning.h keeps blocks up to 32 MiB on the heap; glibc maps every larger one afresh, and the kernel
// zeroes each of its pages on first touch. For a result that size that costs more than the op itself (a ReLU
// over 16 M floats, Zen 4, 1 thread: 9.7 ms with a new 64 MB output, 4.2 ms into an existing one; the page
// faults alone 7.6 ms). So results from this size up (ops' outputs, nnx._args.empty) take their memory from
// here: blocks of dead results are kept, up to a limit in bytes, and handed to the next result of the same
// size class.
constexpr size_t kBlockCacheMinBytes = size_t{32} << 20;

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
