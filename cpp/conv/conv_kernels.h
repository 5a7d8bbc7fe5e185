// Per-ISA convolution kernels that work on NCHW images directly (no GEMM): the "direct" algorithm for
// few input channels and the depthwise one (C/groups == 1). One table per scalar type, filled with the
// portable kernels and overridden for the active ISA (conv_kernels_portable.cpp, conv_kernels_avx2.cpp
// compile the same source, conv_simd.inc, for their instruction set).
//
// Every kernel takes `scratch` of at least conv_direct_scratch_elems(g) elements (64-byte aligned) and
// never allocates. Inputs are C-contiguous; within a kernel the order of every sum is fixed, so results do
// not depend on which thread runs which call.
#pragma once
#include <cstdint>

#include "common/epilogue.h"
#include "conv/conv.h"

namespace nnx {

template <class T>
struct ConvDirectKernels {
  // y_img (K, P, Q) = act(conv(x_img (C, H, W), w) + b) for one image, any groups/stride/dilation.
  void (*direct_fwd)(const ConvGeom& g, const T* x_img, const T* w, const T* b, T* y_img, Act act, T slope,
                     T* scratch);
  // dw_lanes += the weight gradient of one image, sum over p, q of dz_img * x_img window, kept as
  // `lanes` partial sums per element of dw (K*CgRS*lanes values, 32-byte aligned); reduce_lanes turns
  // them into dw once all images of a chunk are in, so the lane reduction is paid once per chunk.
  void (*direct_dw)(const ConvGeom& g, const T* x_img, const T* dz_img, T* dw_lanes, T* scratch);
  // out[i] = sum of the lanes of vector i of v, in lane order.
  void (*reduce_lanes)(const T* v, int64_t n, T* out);
  int lanes;
  // Depthwise (C/groups == 1, m = K/C filters per channel): for input plane c of one image, y planes
  // c*m .. c*m+m-1 (each P x Q) = act(conv(x_plane, w[c*m + i]) + b[c*m + i]).
  void (*dwise_fwd)(const ConvGeom& g, const T* x_plane, const T* w_c, const T* b_c, T* y_planes, Act act,
                    T slope, T* scratch);
  // dx_plane (H x W) = sum over the m output planes of channel c of dz scattered back through w.
  void (*dwise_dx)(const ConvGeom& g, const T* dz_planes, const T* w_c, T* dx_plane, T* scratch);
  // Stride 1 only: dx for one group of one image, dx_g (Cg planes H x W) from dz_g (Kg planes P x Q)
  // and wt_g (Cg, R, Kg, S), as a direct convolution of the padded dz with the flipped filters.
  void (*direct_dx_group)(const ConvGeom& g, const T* dz_g, const T* wt_g, T* dx_g, T* scratch);
  // wt (K * Cg * R * S elements): every group's filters flipped and transposed for direct_dx_group.
  void (*dx_flip_filters)(const ConvGeom& g, const T* w, T* wt);
  // dw_k (R x S) += correlation of one image's dz plane k with its input plane k / m.
  void (*dwise_dw)(const ConvGeom& g, const T* x_plane, const T* dz_plane, T* dw_k, T* scratch);
  // col(row, j) for rows (c, r, s) of the group's Cg channels of one image (x points at its first channel)
  // and output pixels pq0 .. pq0+len-1 of that image; col's row stride ldc; zero where the window is in
  // the padding.
  void (*im2col)(const ConvGeom& g, const T* x, int64_t pq0, int64_t len, T* col, int64_t ldc);
  // The adjoint: dx (the group's channels of one image) += col scattered back.
  void (*col2im)(const ConvGeom& g, const T* col, int64_t ldc, int64_t pq0, int64_t len, T* dx);
  // rows x cols block of C (row stride ld): c = act(c + bias[row]) (bias may be null), vectorised.
  void (*bias_act_rows)(T* c, int64_t rows, int64_t cols, int64_t ld, const T* bias, Act act, T slope);
  // Implicit GEMM (the "implicit" algorithm). igemm_pack lays out w and b once per call:
  // wpack (groups * Kp * CgRS elements) and bpack (groups * Kp), Kp = Kg rounded up to igemm_kblock.
  void (*igemm_pack)(const ConvGeom& g, const T* w, const T* b, T* wpack, T* bpack);
  // y_img (K, P, Q) = act(conv(x_img, w) + b) for one image from the packed weights.
  void (*igemm_fwd)(const ConvGeom& g, const T* x_img, const T* wpack, const T* bpack, T* y_img, Act act, T slope,
                    T* scratch);
  // dwT (groups, CgRS, Kp) += one image's weight gradient, transposed and zero-padded to Kp channels.
  void (*igemm_dw)(const ConvGeom& g, const T* x_img, const T* dz_img, T* dwT, T* scratch);
  int igemm_kblock;  // channels per vector pair (16 floats, 8 doubles)
  const char* isa;
};

// Scratch (in elements of T) any kernel of the table needs for this shape.
template <class T>
int64_t conv_direct_scratch_elems(const ConvGeom& g);

// The table for the active ISA.
template <class T>
const ConvDirectKernels<T>& conv_direct_kernels();

// Filled by each ISA's translation unit.
void conv_fill_portable(ConvDirectKernels<float>& f, ConvDirectKernels<double>& d);
void conv_fill_avx2(ConvDirectKernels<float>& f, ConvDirectKernels<double>& d);

// Padded-plane geometry shared by the kernels: rows Hpp and row length Wpp of a zero-padded input plane
// wide enough that whole vectors (Q rounded up to Qr, a multiple of 2 vectors) can be read past the last
// output column, and Qr itself.
struct ConvPadGeom {
  int64_t Hpp, Wpp, Qr;
};
static inline ConvPadGeom conv_pad_geom(const ConvGeom& g, int64_t lanes2) {
  ConvPadGeom pg;
  pg.Qr = (g.Q + lanes2 - 1) / lanes2 * lanes2;
  int64_t need_h = (g.P - 1) * g.sh + (g.R - 1) * g.dh + 1;
  int64_t need_w = (pg.Qr - 1) * g.sw + (g.S - 1) * g.dw + 1;
  pg.Hpp = g.H + 2 * g.ph > need_h ? g.H + 2 * g.ph : need_h;
  pg.Wpp = g.W + 2 * g.pw > need_w ? g.W + 2 * g.pw : need_w;
  pg.Wpp = (pg.Wpp + 7) / 8 * 8;
  return pg;
}

}  // namespace nnx
