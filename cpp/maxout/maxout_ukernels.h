// The per-ISA micro-kernel table of the maxout family (the one dispatch idiom, common/isa_table.h): the
// kernels of maxout_generic.h on one scalar lane (portable) and on 8 x float / 4 x double (AVX2; AVX-512
// CPUs run it too). Single-threaded; maxout.cpp splits the rows across threads.
#pragma once
#include <cstdint>

namespace nnx {

template <class T>
struct MaxoutUkernels {
  const char* name;
  // `rows` consecutive rows of maxout.h's (outer * groups, pieces, inner) view: x row r starts at
  // x + r * pieces * inner, y row r at y + r * inner.
  void (*forward)(const T* x, T* y, int64_t rows, int64_t pieces, int64_t inner);
  // dx (same layout as x) from dy (same layout as y) and x.
  void (*backward)(const T* dy, const T* x, T* dx, int64_t rows, int64_t pieces, int64_t inner);
};

// Fills of the one dispatch idiom, each in maxout_ukernels_<isa>.cpp.
template <class T>
void maxout_ukernels_fill_portable(MaxoutUkernels<T>& table);
#if defined(NNX_X86)
template <class T>
void maxout_ukernels_fill_avx2(MaxoutUkernels<T>& table);
#endif

template <class T>
const MaxoutUkernels<T>& maxout_ukernels();

}  // namespace nnx
