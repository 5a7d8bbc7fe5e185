// The one dispatch idiom of every kernel family (BLIS's context init, XNNPACK's configs).
//
// A family defines one table type of function pointers, `<Family>Ukernels<T>`, and one fill function per
// ISA, each in its own translation unit compiled for that ISA (`<family>_ukernels_<isa>.cpp`):
//
//   template <class T> void activation_ukernels_fill_portable(ActivationUkernels<T>& t);   // sets every entry
//   template <class T> void activation_ukernels_fill_avx2(ActivationUkernels<T>& t);       // overrides what it has
//
// and reads its table through one function-local IsaTable:
//
//   template <class T> const ActivationUkernels<T>& activation_ukernels() {
//     static const IsaTable<ActivationUkernels<T>> table(IsaFills<ActivationUkernels<T>>{
//         activation_ukernels_fill_portable<T>, NNX_X86_FILL(activation_ukernels_fill_avx2<T>), ...});
//     return table.active();
//   }
//
// IsaTable fills the portable entries first, then calls each ISA's fill on a copy of the table below it
// ONLY WHEN THE RUNNING CPU SUPPORTS THAT ISA (isa_supported). So no code compiled for a missing ISA ever
// runs, not even a table constructor: an ISA translation unit must not hold namespace-scope objects with
// dynamic initialisers (build its table inside the fill function). The fallback chain lives here alone:
//   portable <- avx2 <- avx512 (an AVX-512 CPU runs the AVX2 entries a family has no 512-bit kernel for)
//   portable <- neon
// A fill that is null (the family has no kernels for that ISA, or the build has no such translation unit)
// leaves the inherited entries. `active()` is looked up per call, so nnx.set_isa takes effect at once.
#pragma once
#include "common/cpu.h"

namespace nnx {

constexpr int kNumIsas = 4;  // Isa::portable, avx2, avx512, neon

template <class Table>
struct IsaFills {
  using Fill = void (*)(Table&);
  Fill portable;
  Fill avx2 = nullptr;
  Fill avx512 = nullptr;
  Fill neon = nullptr;
};

// Names a fill defined only in x86-64 (or only in aarch64) builds; elsewhere it is null.
#if defined(NNX_X86)
#define NNX_X86_FILL(f) (f)
#else
#define NNX_X86_FILL(f) nullptr
#endif
#if defined(NNX_ARM64)
#define NNX_ARM64_FILL(f) (f)
#else
#define NNX_ARM64_FILL(f) nullptr
#endif

template <class Table>
class IsaTable {
 public:
  explicit IsaTable(const IsaFills<Table>& fills) {
    fills.portable(at(Isa::portable));
    derive(Isa::avx2, Isa::portable, fills.avx2);
    derive(Isa::avx512, Isa::avx2, fills.avx512);
    derive(Isa::neon, Isa::portable, fills.neon);
  }

  const Table& active() const { return at(active_isa()); }
  const Table& for_isa(Isa isa) const { return at(isa); }

 private:
  void derive(Isa isa, Isa base, typename IsaFills<Table>::Fill fill) {
    at(isa) = at(base);
    if (fill != nullptr && isa_supported(isa)) fill(at(isa));
  }
  Table& at(Isa isa) { return by_isa_[static_cast<int>(isa)]; }
  const Table& at(Isa isa) const { return by_isa_[static_cast<int>(isa)]; }

  Table by_isa_[kNumIsas];
};

}  // namespace nnx
