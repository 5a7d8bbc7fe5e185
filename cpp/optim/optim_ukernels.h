// Per-ISA table of the optimizer block loops (optim_blocks.h compiled once per ISA), on the one dispatch
// idiom of common/isa_table.h: optim_ukernels_portable.cpp fills every entry, optim_ukernels_avx2.cpp
// overrides them on CPUs with AVX2 (AVX-512 CPUs run the AVX2 loops).
#pragma once
#include <cstdint>

#include "optim/optim.h"

namespace nnx {

template <class T>
struct OptimUkernels {
  void (*sgd)(int64_t, int64_t, T*, const T*, T*, const SgdHyper&);
  void (*adam)(int64_t, int64_t, T*, const T*, T*, T*, T*, const AdamHyper&);
  void (*rmsprop)(int64_t, int64_t, T*, const T*, T*, T*, T*, const RmspropHyper&);
  void (*adagrad)(int64_t, int64_t, T*, const T*, T*, const AdagradHyper&);
  void (*adadelta)(int64_t, int64_t, T*, const T*, T*, T*, const AdadeltaHyper&);
};

template <class T>
void optim_ukernels_fill_portable(OptimUkernels<T>& table);
#if defined(NNX_X86)
template <class T>
void optim_ukernels_fill_avx2(OptimUkernels<T>& table);
#endif

// The table of the active ISA.
template <class T>
const OptimUkernels<T>& optim_ukernels();

}  // namespace nnx
