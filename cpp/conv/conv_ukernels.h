// The per-ISA micro-kernel table of the convolution family (the one dispatch idiom, common/isa_table.h):
// the kernels that work on NCHW images directly (direct, depthwise, implicit GEMM) and the short copies
// around the GEMM algorithms (im2col, col2im, bias + activation rows). conv.cpp's drivers call them.
//
// The kernels are written once (cpp/conv/simd/*.inc, one file per algorithm, each kernel's scratch layout
// beside it) and compiled by each ISA's translation unit, conv_ukernels_<isa>.cpp, inside a namespace of
// its own, so no ISA's code can be picked by the linker for another ISA's caller.
//
// Every kernel is single-threaded, takes the scratch its table entry `*_scratch(g)` asks for (elements
// of T, 64-byte aligned, from nnx::workspace) and never allocates. Inputs are C-contiguous; within a
// kernel the order of every sum is fixed, so results do not depend on which thread runs which call.
#pragma once
#include <cstdint>

#include "common/epilogue.h"
#include "conv/conv.h"
#include "conv/winograd.h"

namespace nnx {

template <class T>
struct ConvUkernels {
  // --- direct (simd/direct.inc): SIMD along an output row, all filter taps in registers.
  // y_img (K, P, Q) = act(conv(x_img (C, H, W), w) + b) for one image, any groups/stride/dilation.
  void (*direct_fwd)(const ConvGeom& g, const T* x_img, const T* w, const T* b, T* y_img, Act act, T slope,
                     T* scratch);
  // dw_lanes += the weight gradient of one image, sum over p, q of dz_img * x_img window, kept as
  // `lanes` partial sums per element of dw (K*CgRS*lanes values); reduce_lanes turns them into dw once
  // all images of a chunk are in, so the lane reduction is paid once per chunk.
  void (*direct_dw)(const ConvGeom& g, const T* x_img, const T* dz_img, T* dw_lanes, T* scratch);
  int64_t (*direct_scratch)(const ConvGeom& g);  // direct_fwd and direct_dw
  // out[i] = sum of the lanes of vector i of v, in lane order.
  void (*reduce_lanes)(const T* v, int64_t n, T* out);
  int lanes;
  // Stride 1 only: dx for group gi of one image, dx_g (Cg planes H x W) from dz_g (Kg planes P x Q) and
  // dx_flip_filters' wt, as a direct convolution of the padded dz with the flipped filters.
  void (*direct_dx_group)(const ConvGeom& g, int64_t gi, const T* dz_g, const T* wt, T* dx_g, T* scratch);
  int64_t (*direct_dx_scratch)(const ConvGeom& g);
  // wt (dx_filters_elems(g) elements), once per call: every group's filters flipped and transposed, and the
  // tap offsets, for direct_dx_group.
  void (*dx_flip_filters)(const ConvGeom& g, const T* w, T* wt);
  int64_t (*dx_filters_elems)(const ConvGeom& g);

  // --- kvec (simd/kvec_dx.inc), stride 1 only: dx for group gi of one image with SIMD along the filters,
  // only the taps that land on dz multiplied; wt is kvec_dx_filters' (kvec_filters_elems(g) elements, once
  // per call: every group's filters as (Cg, R, S, Kg rounded up to the lanes)).
  void (*kvec_dx_group)(const ConvGeom& g, int64_t gi, const T* dz_g, const T* wt, T* dx_g, T* scratch);
  int64_t (*kvec_scratch)(const ConvGeom& g);
  void (*kvec_dx_filters)(const ConvGeom& g, const T* w, T* wt);
  int64_t (*kvec_filters_elems)(const ConvGeom& g);
  // 32-byte vectors per multiply-add (2 on the table for full-width 512-bit pipes) where Kg fills them, and
  // the speed that gives over one vector per multiply-add, as measured (conv_dx_path's cost model reads it).
  int kvec_wide;
  double kvec_wide_rate;
  // kvec's rate over the dx model's for it (conv_dx_path; fitted per table like Igemm::dx_rate), and the largest
  // dz of one image the model lets it take: P x Q pixels and Kg x P x Q elements.
  double kvec_dx_rate;
  int64_t kvec_max_dz_pixels, kvec_max_dz_elems;
  // The direct dx's rate over the dx model's for it (conv_dx_path; fitted per table like kvec_dx_rate), and
  // whether the model weighs it against the implicit GEMM (otherwise the implicit GEMM wherever it applies).
  double direct_dx_rate;
  bool direct_dx_against_implicit;
  // Output columns per multiply-add of the direct and per-plane depthwise kernels, in 32-byte vectors (2 on the
  // table for full-width 512-bit pipes; simd/direct.inc's kDirectWide): conv.cpp's depthwise_lanes reads it.
  int direct_wide;

  // --- depthwise (simd/depthwise.inc): C/groups == 1, m = K/C filters per channel.
  // For input plane c of one image, y planes c*m .. c*m+m-1 (each P x Q) = act(conv(x_plane, w[c*m+i]) + b).
  void (*dwise_fwd)(const ConvGeom& g, const T* x_plane, const T* w_c, const T* b_c, T* y_planes, Act act,
                    T slope, T* scratch);
  // dx_plane (H x W) = sum over the m output planes of channel c of dz scattered back through w.
  void (*dwise_dx)(const ConvGeom& g, const T* dz_planes, const T* w_c, T* dx_plane, T* scratch);
  // dw_k (R x S) += correlation of one image's dz plane k with its input plane k / m.
  void (*dwise_dw)(const ConvGeom& g, const T* x_plane, const T* dz_plane, T* dw_k, T* scratch);
  int64_t (*dwise_scratch)(const ConvGeom& g);  // dwise_fwd, dwise_dx and dwise_dw
  // The same with the channels in the lanes, for one filter per channel (K == C): a block of nc <= lanes
  // consecutive channels of one image (each pointer at the block's first plane), its filters (and bias) from
  // dwise_lanes_pack's pack (once per call: ceil(C / lanes) blocks of (R*S + 1) * lanes elements; flipped for
  // dx), pack_block the block's part of it.
  void (*dwise_lanes_pack)(const ConvGeom& g, const T* w, const T* b, bool flipped, T* pack);
  void (*dwise_lanes_fwd)(const ConvGeom& g, const T* x_block, const T* pack_block, int nc, T* y_block, Act act,
                          T slope, T* scratch);
  void (*dwise_lanes_dx)(const ConvGeom& g, const T* dz_block, const T* pack_block, int nc, T* dx_block, T* scratch);
  // acc (R*S vectors of `lanes` values, tap t of channel c at acc[t * lanes + c]) += the block's weight gradient
  // over one image.
  void (*dwise_lanes_dw)(const ConvGeom& g, const T* x_block, const T* dz_block, int nc, T* acc, T* scratch);
  int64_t (*dwise_lanes_scratch)(const ConvGeom& g);  // the three above
  // The forward on flat planes (simd/depthwise_flat.inc), where conv.cpp's dwise_flat_forward: output vectors of
  // flat_lanes pixels, whatever rows they span, one masked load and multiply-add a tap. plan
  // (dwise_flat_plan_elems(g) elements, once per call): the tap offsets and lane masks. For channels c0 ..
  // c0 + nc - 1 of one image (x_img, y_img at its first planes), y planes c*m .. c*m + m - 1 = act(conv + b).
  void (*dwise_flat_plan)(const ConvGeom& g, T* plan);
  int64_t (*dwise_flat_plan_elems)(const ConvGeom& g);
  void (*dwise_flat_fwd)(const ConvGeom& g, const T* plan, const T* x_img, int64_t c0, int64_t nc, const T* w,
                         const T* b, T* y_img, Act act, T slope, T* scratch);
  int64_t (*dwise_flat_scratch)(const ConvGeom& g);
  // dx at stride 2 (no dilation, one filter per channel, ceil(W / 2) == Q) by dx's four phases, each a flat
  // forward over dz with its taps, interleaved into dx's plane c of one image. plan: dwise_flat_dx2_plan's
  // (dwise_flat_dx2_plan_elems(g) elements, once per call).
  void (*dwise_flat_dx2_plan)(const ConvGeom& g, T* plan);
  int64_t (*dwise_flat_dx2_plan_elems)(const ConvGeom& g);
  void (*dwise_flat_dx2)(const ConvGeom& g, const T* plan, const T* dz_plane, const T* w_c, T* dx_plane,
                         T* scratch);
  int64_t (*dwise_flat_dx2_scratch)(const ConvGeom& g);
  int flat_lanes;
  // Whether its masked loads are instructions (AVX2, AVX-512; lane by lane in the portable build), and the widest
  // input rows with which strided layers take it too (through their phases; 0: none), as measured per table:
  // conv.cpp's dwise_flat_forward.
  bool flat_masked_loads;
  int64_t dwise_flat_strided_max_width;
  // The narrowest input rows with which a strided forward with one filter per channel takes the flat planes
  // rather than the lane kernels (conv.cpp's forward_depthwise).
  int64_t dwise_flat_strided_fwd_min_width;

  // --- im2col (simd/im2col.inc): the copies around the GEMM of gemm.h.
  // col(row, j) for rows (c, r, s) of the group's Cg channels of one image (x points at its first channel)
  // and output pixels pq0 .. pq0+len-1 of that image; col's row stride ldc; zero where the window is in
  // the padding.
  void (*im2col)(const ConvGeom& g, const T* x, int64_t pq0, int64_t len, T* col, int64_t ldc);
  // The adjoint: dx (the group's channels of one image) += col scattered back.
  void (*col2im)(const ConvGeom& g, const T* col, int64_t ldc, int64_t pq0, int64_t len, T* dx);
  // rows x cols block of C (row stride ld): c = act(c + bias[row]) (bias may be null), vectorised.
  void (*bias_act_rows)(T* c, int64_t rows, int64_t cols, int64_t ld, const T* bias, Act act, T slope);

  // --- implicit GEMM (simd/implicit.inc), in two register tiles: igemm[0] for blocks of 64 bytes of output
  // channels, igemm[1] for the build's wide block (the same where it has none); igemm_for picks one.
  // offs (igemm_offsets_elems(g) elements), once per call: the pixel and tap offsets both tiles read.
  void (*igemm_offsets)(const ConvGeom& g, T* offs);
  int64_t (*igemm_offsets_elems)(const ConvGeom& g);
  struct Igemm {
    // Lays out w and b once per call: wpack (groups * Kp * CgRS elements) and bpack (groups * Kp),
    // Kp = conv_igemm_channels(g, kblock).
    void (*pack)(const ConvGeom& g, const T* w, const T* b, T* wpack, T* bpack);
    // y_img (K, P, Q) = act(conv(x_img, w) + b) for one image from the packed weights.
    void (*fwd)(const ConvGeom& g, const T* x_img, const T* wpack, const T* bpack, const T* offs, T* y_img, Act act,
                T slope, T* scratch);
    // dwT (groups, CgRS, Kp) += one image's weight gradient, transposed and zero-padded to Kp channels.
    void (*dw)(const ConvGeom& g, const T* x_img, const T* dz_img, const T* offs, T* dwT, T* scratch);
    int64_t (*scratch)(const ConvGeom& g);  // fwd and dw
    int kblock;                             // output channels per block
    int mr;                                 // output pixels (forward) per tile
    // Multiply-add lanes per cycle over a 32-byte vector's, where every lane works: conv_pick_algorithm's
    // model of its cost against the direct kernels'. 2 for the wide tile of full-width 512-bit pipes
    // (two 64-byte multiply-adds per broadcast input), else 1.
    double rate;
    // The same rate for conv.cpp's dx model (the tile over dz, where dx is the implicit GEMM of the transposed
    // convolution), as measured against the direct dx kernel on images up to kIgemmDxSmallImagePixels pixels:
    // rate unless the table measured otherwise (conv_ukernels_zmm_avx512.cpp).
    double dx_rate;
  } igemm[2];
  // The implicit tiles' dx rate on larger images, as a fraction of dx_rate (the same measurements).
  double igemm_dx_large_image_rate;
  // Taps (C/groups x R x S) up to which conv_pick_algorithm takes the implicit GEMM over im2col; 0: by the tile's
  // rate (conv.cpp's implicit_max_taps).
  int64_t igemm_max_taps;
  // The strided dx by phases at a column stride of 2 (conv.cpp's backward_data_phases): `rows` rows of dx (ld_out
  // apart) from its two column phases' rows (ld_e and ld_o apart), out[2j] = e[j] (j < ne), out[2j + 1] = o[j]
  // (j < no), ne == no or no + 1.
  void (*interleave_columns2)(const T* e, int64_t ld_e, const T* o, int64_t ld_o, int64_t rows, int64_t ne,
                              int64_t no, T* out, int64_t ld_out);
  // The fewest output pixels (P x Q) with which a strided dx runs in phases (conv.cpp's dx_by_phases), for layers
  // of up to kImplicitMaxTaps taps and for those of more.
  int64_t dx_phases_min_pixels, dx_phases_min_pixels_many_taps;
  // The wide tile for groups of more channels than the narrow block holds (so its lanes are not half
  // empty): measured 1.29-1.47x faster than the narrow one on ResNet-20's 16->32 and 32->64 stride-2 layers on
  // a CPU with full-width 512-bit FMA pipes, where LeNet-5's 16-channel conv2 lost 0.86-0.90x with it.
  // Where the wide tile is no faster per lane (rate), it takes only the layers it leaves no more lanes empty in
  // than the narrow one (48 channels: three narrow blocks of 16 floats, not two wide ones of 32).
  const Igemm& igemm_for(const ConvGeom& g) const { return igemm_for_channels(g.Kg()); }
  const Igemm& igemm_for_channels(int64_t kg) const {
    const int64_t nb = igemm[0].kblock, wb = igemm[1].kblock;
    const bool wide = kg > nb && (igemm[1].rate > igemm[0].rate || (kg + wb - 1) / wb * wb <= (kg + nb - 1) / nb * nb);
    return igemm[wide ? 1 : 0];
  }

  // --- Winograd F(MxM, RxR) (simd/winograd.inc; conv/winograd.h), one entry per variant: index
  // wino_index(g), F(2x2, 3x3), F(2x2, 5x5), F(4x4, 3x3), F(4x4, 5x5); alpha = M + R - 1 and xi runs over the
  // alpha^2 points.
  // u (alpha^2 planes ldu >= round_up(K, mr) C apart) = the filters transformed, G f G^T (flipped: conv2d's dx
  // filters, see winograd.h), each plane the GEMM's packed A operand (pack_a_panels's panels of mr <= 16 filters,
  // the last padded with zero filters), for the packed indices [i0, i1) of the round_up(K, mr) C: i0 a multiple of
  // 16 (so threads' ranges share no vector), i1 a multiple of 16 or the end. scratch: wino_filter_scratch
  // elements, shared by the ranges (each writes only its own pairs' taps).
  void (*wino_weights[kWinoVariants])(const ConvGeom& g, const T* w, bool flipped, T* u, int64_t ldu, int64_t mr,
                                      T* scratch, int64_t i0, int64_t i1);
  int64_t (*wino_filter_scratch[kWinoVariants])(const ConvGeom& g);  // wino_weights and wino_weights_grad
  // The transformed input patches of tile rows gr0 .. gr0+nrows-1 of the batch x, as the GEMMs' packed B
  // operands: xi's at v + xi * xi_stride, slivers of nr tiles sl_stride apart, C rows of nr values each. Only
  // the tiles' columns are written (a part-filled last sliver's other columns are the caller's), so threads may
  // fill one sliver's columns side by side.
  void (*wino_input[kWinoVariants])(const ConvGeom& g, const T* x, int64_t gr0, int64_t nrows, T* v, int64_t nr,
                        int64_t sl_stride, int64_t xi_stride, T* scratch);
  // Those tile rows of y = act(A^T M A + b) in filters k0 .. k1-1, from the products m (row k of xi's at m +
  // xi * xi_stride + k * ldm, one column per tile).
  void (*wino_output[kWinoVariants])(const ConvGeom& g, const T* m, int64_t ldm, int64_t xi_stride, int64_t gr0,
                         int64_t nrows, int64_t k0, int64_t k1, const T* b, T* y, Act act, T slope, T* scratch);
  int64_t (*wino_scratch[kWinoVariants])(const ConvGeom& g);  // wino_input and wino_output
  // For the weight gradient: the band's M x M blocks of dz transformed, A dY A^T (filter k, point xi, tile t at
  // out[xi * xi_stride + k * ld + t]), and dw (K, C, R, R) = G^T dU G from their products with the inputs'
  // transforms summed over the tiles, dU (alpha^2, K, C; planes wino_point_stride apart).
  void (*wino_dy[kWinoVariants])(const ConvGeom& g, const T* dz, int64_t gr0, int64_t nrows, T* out, int64_t ld,
                     int64_t xi_stride, T* scratch);
  int64_t (*wino_dy_scratch[kWinoVariants])(const ConvGeom& g);
  void (*wino_weights_grad[kWinoVariants])(const ConvGeom& g, const T* du, T* dw, T* scratch);

  // conv_pick_algorithm: the fewest 2x2 tiles a row (of the output) with which a 5x5 layer goes Winograd.
  int wino5_min_tiles_q;
  // conv_pick_algorithm: the fewest channels each way, and channels both ways together, with which a 5x5
  // layer goes Winograd on F(4x4, 5x5) tiles.
  int wino45_min_channels, wino45_min_channel_sum;

  const char* isa;
};

// The implicit GEMM's filters per group, Kg rounded up to the kernel's channel block: the one formula
// the kernels (their packing and scratch) and the drivers (workspace sizes, the transposed dw) all read.
int64_t conv_igemm_channels(const ConvGeom& g, int64_t kblock);

// Fills of the one dispatch idiom, each in conv_ukernels_<isa>.cpp.
template <class T>
void conv_ukernels_fill_portable(ConvUkernels<T>& table);
#if defined(NNX_X86)
template <class T>
void conv_ukernels_fill_avx2(ConvUkernels<T>& table);
template <class T>
void conv_ukernels_fill_avx512(ConvUkernels<T>& table);
template <class T>
void conv_ukernels_fill_avx512_zmm(ConvUkernels<T>& table);  // for wide_vector_fma CPUs, called by the above
#endif

// The table of the active ISA (looked up per call, so nnx.set_isa takes effect at once).
template <class T>
const ConvUkernels<T>& conv_ukernels();

}  // namespace nnx
