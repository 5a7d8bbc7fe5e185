// Winograd F(2x2, 3x3), F(4x4, 3x3), F(2x2, 5x5) and F(4x4, 5x5) convolution (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016): 3x3 or 5x5 filters, stride 1, no dilation, one group,
// any padding. Each 2x2 block of outputs costs 16 (3x3) or 36 (5x5) multiply-adds per input channel and filter
// instead of 36 or 100, each 4x4 block 36 (3x3) or 64 (5x5) instead of 144 or 400:
// the input patches and the filters are transformed (simd/winograd.inc, per ISA), multiplied as one GEMM
// over the channels per transform point (alpha^2 of them; the GEMM family's micro-kernel on packed
// operands) and transformed back.
//
// Driver contract (winograd.cpp): y = act(conv(x, w) + b) as conv2d_forward's, for a geometry for which
// conv_winograd_applies holds. With `flipped` the filters are given as conv2d's dx needs them: w is the
// forward layer's (C, K, R, R) and the filter from input channel c to output channel k is w[c][k] rotated
// by 180 degrees, so conv2d_backward's dx is this forward over dz with the transposed geometry.
// Each output depends only on its own tile's arithmetic (the GEMM sums the channels in order in one
// micro-kernel call), so results are bitwise identical for any thread count and blocking.
// Accuracy: the transforms add a few units of rounding to each output (more for the six-point ones, F(4x4,
// 3x3) and F(2x2, 5x5), whose points 2 and -2 scale terms by up to 8 and whose G holds sixths, and the
// eight-point F(4x4, 5x5), whose G holds ninths and forty-fifths): on unit-scale data float32 results stay
// within 1e-5 (F(2x2, 3x3)), 5e-5 (F(4x4, 3x3)) and 1e-4 (F(2x2, 5x5), F(4x4, 5x5)) of the largest output of
// the float64 direct sum (tests; measured 4e-7, 6e-6, 6e-6 and 8e-6).
#pragma once
#include <cstdint>
#include <string>

#include "common/epilogue.h"
#include "conv/conv.h"

namespace nnx {

// The tile M: each transform yields an M x M block of outputs from an alpha x alpha input patch, alpha =
// M + R - 1. F(4x4, 3x3) multiplies 36 times per 16 outputs, channel and filter (F(2x2, 3x3): 16 per 4), so
// it does 9/16 of F(2x2, 3x3)'s GEMM work and writes 9/16 of its transformed values, for costlier transforms;
// F(4x4, 5x5) multiplies 64 times per 16 outputs (F(2x2, 5x5): 36 per 4), 4/9 of the work.
// conv_winograd_tile (winograd.cpp) chooses between them.
int conv_winograd_tile(const ConvGeom& g);
// For tests: 2 or 4 makes every Winograd layer use that tile, 0 restores the choice by shape.
void conv_winograd_force_tile(int m);

// Output tiles of an extent: the last one partial when M does not divide it.
inline int64_t wino_tiles(int64_t extent, int m) { return (extent + m - 1) / m; }
inline int64_t wino_tiles_p(const ConvGeom& g) { return wino_tiles(g.P, conv_winograd_tile(g)); }
inline int64_t wino_tiles_q(const ConvGeom& g) { return wino_tiles(g.Q, conv_winograd_tile(g)); }

// The transforms of F(MxM, RxR), alpha = M + R - 1 points: 0, 1, -1 (and 2, -2 when alpha = 6; 2, -2, 1/2,
// -1/2 when alpha = 8) and infinity (Toom-Cook with the scaling in G, as scripts/winograd_matrices.py derives
// and checks them in 2-D; B^T depends on the points only, so F(4x4, 3x3) and F(2x2, 5x5) share it).
// Y = A^T [(G w G^T) . (B^T d B)] A for an M x M block of outputs and its alpha x alpha input patch d.
// In an anonymous namespace: each translation unit, baseline or ISA-compiled, has its own copy of the
// tables, so no symbol is shared between code built for different ISAs (scripts/check_isa_symbols.py).
namespace {
constexpr double kWinoBT6[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                   {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
// Eight points (0, 1, -1, 2, -2, 1/2, -1/2, infinity), for F(4x4, 5x5).
constexpr double kWinoBT8[8][8] = {
    {-1, 0, 5.25, 0, -5.25, 0, 1, 0},        {0, 1, 1, -4.25, -4.25, 1, 1, 0},
    {0, -1, 1, 4.25, -4.25, -1, 1, 0},       {0, 0.5, 0.25, -2.5, -1.25, 2, 1, 0},
    {0, -0.5, 0.25, 2.5, -1.25, -2, 1, 0},   {0, 2, 4, -2.5, -5, 0.5, 1, 0},
    {0, -2, 4, 2.5, -5, -0.5, 1, 0},         {0, -1, 0, 5.25, 0, -5.25, 0, 1}};
template <int M, int R>
struct WinoF;
template <>
struct WinoF<2, 3> {
  static constexpr int alpha = 4;
  static constexpr double BT[4][4] = {{-1, 0, 1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, -1, 0, 1}};
  static constexpr double G[4][3] = {{-1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, 1}};
};
template <>
struct WinoF<2, 5> {
  static constexpr int alpha = 6;
  static constexpr const double (&BT)[6][6] = kWinoBT6;
  static constexpr double G[6][5] = {{1.0 / 4, 0, 0, 0, 0},
                                     {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
                                     {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
                                     {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
                                     {0, 0, 0, 0, 1}};
  static constexpr double AT[2][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1}};
};
template <>
struct WinoF<4, 3> {
  static constexpr int alpha = 6;
  static constexpr const double (&BT)[6][6] = kWinoBT6;
  static constexpr double G[6][3] = {{1.0 / 4, 0, 0},
                                     {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                     {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                     {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                     {0, 0, 1}};
  static constexpr double AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};
template <>
struct WinoF<4, 5> {
  static constexpr int alpha = 8;
  static constexpr const double (&BT)[8][8] = kWinoBT8;
  static constexpr double G[8][5] = {{-1, 0, 0, 0, 0},
                                     {-2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9},
                                     {-2.0 / 9, 2.0 / 9, -2.0 / 9, 2.0 / 9, -2.0 / 9},
                                     {1.0 / 90, 1.0 / 45, 2.0 / 45, 4.0 / 45, 8.0 / 45},
                                     {1.0 / 90, -1.0 / 45, 2.0 / 45, -4.0 / 45, 8.0 / 45},
                                     {32.0 / 45, 16.0 / 45, 8.0 / 45, 4.0 / 45, 2.0 / 45},
                                     {32.0 / 45, -16.0 / 45, 8.0 / 45, -4.0 / 45, 2.0 / 45},
                                     {0, 0, 0, 0, 1}};
  static constexpr double AT[4][8] = {{1, 1, 1, 1, 1, 1, 1, 0},
                                      {0, 1, -1, 2, -2, 0.5, -0.5, 0},
                                      {0, 1, 1, 4, 4, 0.25, 0.25, 0},
                                      {0, 1, -1, 8, -8, 0.125, -0.125, 1}};
};
}  // namespace

// The variants in the kernel table (conv_ukernels.h): F(2x2, 3x3), F(2x2, 5x5), F(4x4, 3x3), F(4x4, 5x5).
constexpr int kWinoVariants = 4;
inline int wino_index(const ConvGeom& g) {
  const bool four = conv_winograd_tile(g) == 4;
  return g.R == 5 ? (four ? 3 : 1) : (four ? 2 : 0);
}
// The distance between two points' planes of the transformed filters u and weight gradients dU (alpha^2
// planes of K x C): K C and a cache line, so that the alpha^2 stores (or loads) of one filter's transform do
// not all fall in one set of the L1 when K C is a multiple of 1024 (64 x 64 filters: the transform's
// scattered stores took 10x longer).
inline int64_t wino_point_stride(const ConvGeom& g) { return g.K * g.C + 16; }
// The transform points, alpha^2: one GEMM each, and the size of a transformed filter.
inline int wino_points(const ConvGeom& g) {
  const int alpha = conv_winograd_tile(g) + static_cast<int>(g.R) - 1;
  return alpha * alpha;
}

bool conv_winograd_applies(const ConvGeom& g, std::string* why);

template <class T>
void conv_winograd_forward(const ConvGeom& g, const T* x, const T* w, bool flipped, const T* b, T* y, Act act,
                           T slope, int nthreads);

// The weight gradient by Winograd, dw (K, C, R, R) = G^T dU G with dU (alpha^2, K, C; the planes
// wino_point_stride apart) the sum over the
// batch's tiles of (A dY A^T) . (B^T d B). dw_chunk: dU of images n0 .. n0+nimg-1 (overwritten), the tiles
// summed band by band in a fixed order, each point's sum a GEMM over the band's tiles (gemm.h, nthreads for
// its M/N split), so it depends on the shape only; conv2d_backward adds the chunks of a batch in order, then
// dw_finish transforms the sum once.
template <class T>
void conv_winograd_dw_chunk(const ConvGeom& g, const T* x, const T* dz, int64_t n0, int64_t nimg, T* du,
                            int nthreads);
template <class T>
void conv_winograd_dw_finish(const ConvGeom& g, const T* du, T* dw);

}  // namespace nnx
