// Winograd F(2x2, 3x3) convolution (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016): 3x3 filters, stride 1, no dilation, one group, any padding. Each 2x2 block of outputs costs 16
// multiply-adds per input channel and filter instead of 36: the input patches and the filters are
// transformed (simd/winograd.inc, per ISA), multiplied as 16 GEMMs over the channels (the GEMM family's
// micro-kernel on packed operands) and transformed back.
//
// Driver contract (winograd.cpp): y = act(conv(x, w) + b) as conv2d_forward's, for a geometry for which
// conv_winograd_applies holds. With `flipped` the filters are given as conv2d's dx needs them: w is the
// forward layer's (C, K, 3, 3) and the filter from input channel c to output channel k is w[c][k] rotated
// by 180 degrees, so conv2d_backward's dx is this forward over dz with the transposed geometry.
// Each output depends only on its own tile's arithmetic (the GEMM sums the channels in order in one
// micro-kernel call), so results are bitwise identical for any thread count and blocking.
// Accuracy: the transforms' additions and halvings add a few units of rounding to each output; the
// float32 results stay within 1e-5 relative of the direct sum on unit-scale data.
#pragma once
#include <cstdint>
#include <string>

#include "common/epilogue.h"
#include "conv/conv.h"

namespace nnx {

// Output tiles per image: rows and columns of 2x2 blocks (the last one partial when P or Q is odd).
inline int64_t wino_tiles_p(const ConvGeom& g) { return (g.P + 1) / 2; }
inline int64_t wino_tiles_q(const ConvGeom& g) { return (g.Q + 1) / 2; }

bool conv_winograd_applies(const ConvGeom& g, std::string* why);

template <class T>
void conv_winograd_forward(const ConvGeom& g, const T* x, const T* w, bool flipped, const T* b, T* y, Act act,
                           T slope, int nthreads);

}  // namespace nnx
