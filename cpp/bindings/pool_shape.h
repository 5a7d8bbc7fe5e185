// The validated shape and indices of a pooling, for the bindings that run the pooling kernels (pool.cpp, and
// conv.cpp's convolution followed by max pooling).
#pragma once
#include <pybind11/numpy.h>

#include <cstdint>

#include "pool/pool.h"

namespace nnx {

// Builds and validates the shape of a pooling of kind `kind` (PoolKind) of x (N, C, H, W) into y (N, C, OH,
// OW) (ys may be null: only x and the parameters are checked); ValueError naming the bad parameter.
Pool2dShape pool_shape(int kind, const int64_t* xs, const int64_t* ys, int64_t kh, int64_t kw, int64_t sh,
                       int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw);

// The data of an int32 (N, C, OH, OW) C-contiguous index array of `shape` (writable: for a forward to fill);
// ValueError naming `indices` otherwise.
int32_t* indices_ptr(pybind11::array& a, const int64_t* shape, bool writable);

}  // namespace nnx
