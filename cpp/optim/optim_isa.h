// Per-ISA tables of the optimizer block loops (optim_blocks.h compiled once per ISA).
#pragma once
#include <cstdint>

#include "optim/optim.h"

namespace nnx {

template <class T>
struct OptimBlocks {
  void (*sgd)(int64_t, int64_t, T*, const T*, T*, const SgdHyper&);
  void (*adam)(int64_t, int64_t, T*, const T*, T*, T*, T*, const AdamHyper&);
  void (*rmsprop)(int64_t, int64_t, T*, const T*, T*, T*, T*, const RmspropHyper&);
  void (*adagrad)(int64_t, int64_t, T*, const T*, T*, const AdagradHyper&);
  void (*adadelta)(int64_t, int64_t, T*, const T*, T*, T*, const AdadeltaHyper&);
};

// Defined in optim_avx2.cpp, which is only built on x86-64.
template <class T>
OptimBlocks<T> optim_blocks_avx2();

}  // namespace nnx
