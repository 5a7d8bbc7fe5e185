// Embedding lookup and its gradient: the rows of a (V, D) table picked by n int64 ids, and the scatter of n
// row gradients back onto the table. The ids are checked by the caller (every id in [0, V)).
#pragma once
#include <cstdint>

namespace nnx {

// y (n, D) = weight[ids].
template <class T>
void embedding_forward(const T* weight, int64_t D, const int64_t* ids, int64_t n, T* y, int nthreads);

// dweight (V, D) = sum over positions i with ids[i] == v (in input order) of dy[i]; the padding row
// (padding_idx >= 0) stays 0. Each column's sum runs over the positions in order whatever the threads, so
// the result does not depend on the thread count.
template <class T>
void embedding_backward(const T* dy, const int64_t* ids, int64_t n, int64_t V, int64_t D, int64_t padding_idx,
                        T* dweight, int nthreads);

}  // namespace nnx
