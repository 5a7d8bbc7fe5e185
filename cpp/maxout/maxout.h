// Maxout family (Goodfellow et al., 2013): the maximum over groups of `pieces` consecutive features.
//
// x is viewed as (outer, groups, pieces, inner) and y as (outer, groups, inner): for a Linear's output
// maxed along its last axis inner = 1, for a conv feature map maxed over channels inner = H * W.
//   y[o, c, i] = x[o, c, j*, i],  j* = the first piece j with x[o, c, j, i] > every earlier piece
// (the reference's strict >: ties and NaN pieces after the first never win; a NaN first piece does).
// The backward finds j* again from x, as max pooling does, so the forward stores nothing:
//   dx[o, c, j, i] = dy[o, c, i] if j == j* else 0.
// No sums: the results are the same bits for any thread count and any ISA.
#pragma once
#include <cstdint>

namespace nnx {

struct MaxoutShape {
  int64_t outer, groups, pieces, inner;
  int64_t rows() const { return outer * groups; }  // one row: pieces * inner inputs, inner outputs
};

// The largest `pieces` the kernels accept: the winning piece is tracked in lanes of T, exact below 2^24.
constexpr int64_t kMaxoutMaxPieces = int64_t{1} << 24;

template <class T>
void maxout_forward(const MaxoutShape& s, const T* x, T* y, int nthreads);

template <class T>
void maxout_backward(const MaxoutShape& s, const T* dy, const T* x, T* dx, int nthreads);

template <class T>
const char* maxout_ukernel_name();

}  // namespace nnx
