// Portable build of the direct/depthwise kernels (baseline ISA; 32-byte vectors lowered by the compiler)
// and the per-ISA table lookup.
#define NNX_CONV_NS portable
#include "conv/conv_simd.inc"

#include "common/cpu.h"

#include <algorithm>

namespace nnx {

void conv_fill_portable(ConvDirectKernels<float>& f, ConvDirectKernels<double>& d) {
  portable::fill(f, "portable");
  portable::fill(d, "portable");
}

#if !defined(NNX_X86)
// Non-x86 builds have no AVX2 translation unit: keep the portable kernels.
void conv_fill_avx2(ConvDirectKernels<float>& f, ConvDirectKernels<double>& d) { conv_fill_portable(f, d); }
#endif

namespace {

struct AllTables {
  ConvDirectKernels<float> pf, af;
  ConvDirectKernels<double> pd, ad;
  AllTables() {
    conv_fill_portable(pf, pd);
    conv_fill_avx2(af, ad);
  }
};

const AllTables& tables() {
  static const AllTables t;
  return t;
}

bool use_avx2() { return active_isa() == Isa::avx2 || active_isa() == Isa::avx512; }

}  // namespace

template <>
const ConvDirectKernels<float>& conv_direct_kernels<float>() {
  return use_avx2() ? tables().af : tables().pf;
}
template <>
const ConvDirectKernels<double>& conv_direct_kernels<double>() {
  return use_avx2() ? tables().ad : tables().pd;
}

template <class T>
int64_t conv_direct_scratch_elems(const ConvGeom& g) {
  const int64_t lanes2 = 64 / sizeof(T);
  ConvPadGeom pg = conv_pad_geom(g, lanes2);
  int64_t fwd = g.C * pg.Hpp * pg.Wpp + g.K * g.P * pg.Qr + (g.CgRS() * 8 + sizeof(T) - 1) / sizeof(T);
  // direct_dx_group: padded dz planes of one group and the tap offsets.
  int64_t wr = (g.W + lanes2 - 1) / lanes2 * lanes2;
  int64_t wpp = (wr + (g.S - 1) * g.dw + 7) / 8 * 8;
  int64_t dx = g.Kg() * (g.H + (g.R - 1) * g.dh) * wpp + (g.Kg() * g.R * g.S * 8 + sizeof(T) - 1) / sizeof(T);
  // implicit GEMM: padded input (if padded), pixel and tap offsets, dz transposed to (PQ, Kp).
  int64_t kp = (g.Kg() + lanes2 - 1) / lanes2 * lanes2;
  int64_t pad = g.ph == 0 && g.pw == 0 ? 0 : g.C * (g.H + 2 * g.ph) * (g.W + 2 * g.pw);
  int64_t ig = pad + 16 + ((g.PQ() + g.CgRS()) * 8 + sizeof(T) - 1) / sizeof(T) + 16 + g.PQ() * kp;
  return std::max(std::max(fwd, dx), ig) + g.R * g.S * lanes2 / 2 + 64;  // + dwise_dw's lane partials
}

template int64_t conv_direct_scratch_elems<float>(const ConvGeom&);
template int64_t conv_direct_scratch_elems<double>(const ConvGeom&);

}  // namespace nnx
