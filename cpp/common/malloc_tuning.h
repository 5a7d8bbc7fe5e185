// Process-wide tuning of glibc's malloc for training loops, applied once when the extension loads.
#pragma once

namespace nnx {

// A training step allocates and frees the same few megabyte-sized arrays (activations, gradients) every
// iteration. glibc serves blocks above its mmap threshold (128 KiB at first, raised only after such a
// block is freed) with fresh mmap()s and trims freed heap tops, so every step page-faults its outputs in
// again: about 900 faults and 1.2 ms of a 5 ms LeNet-5 step here. Keeping blocks up to 32 MiB on the heap
// and not trimming below 256 MiB reuses the pages instead. Skipped when NNX_MALLOC_TUNING=0 or when the
// user already set any MALLOC_* variable; a no-op without glibc. Returns whether it applied the tuning.
bool tune_malloc_for_training();

// Whether tune_malloc_for_training applied the tuning in this process.
bool malloc_tuned();

}  // namespace nnx
