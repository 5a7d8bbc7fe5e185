// Embedding kernels (embedding.h). Both are a pass over memory: rows copied, or rows added into the table.
#include "rnn/embedding.h"

#include <algorithm>
#include <cstring>

#include "common/threads.h"

namespace nnx {

template <class T>
void embedding_forward(const T* weight, int64_t D, const int64_t* ids, int64_t n, T* y, int nthreads) {
  const Grain grain{std::max<int64_t>(1, kElementwiseGrain.units / std::max<int64_t>(D, 1))};
  parallel_for(n, grain, nthreads, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      std::memcpy(y + i * D, weight + ids[i] * D, static_cast<size_t>(D) * sizeof(T));
  });
}

template <class T>
void embedding_backward(const T* dy, const int64_t* ids, int64_t n, int64_t V, int64_t D, int64_t padding_idx,
                        T* dweight, int nthreads) {
  parallel_for(V * D, kElementwiseGrain, nthreads, [=](int64_t b, int64_t e) {
    std::memset(static_cast<void*>(dweight + b), 0, static_cast<size_t>(e - b) * sizeof(T));
  });
  // Threads split the columns, so every column is summed by one thread over the positions in order.
  const Grain grain{std::max<int64_t>(1, kElementwiseGrain.units / std::max<int64_t>(n, 1))};
  parallel_for(D, grain, nthreads, [=](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = ids[i];
      if (v == padding_idx) continue;
      const T* src = dy + i * D;
      T* dst = dweight + v * D;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }, 16);
}

template void embedding_forward<float>(const float*, int64_t, const int64_t*, int64_t, float*, int);
template void embedding_forward<double>(const double*, int64_t, const int64_t*, int64_t, double*, int);
template void embedding_backward<float>(const float*, const int64_t*, int64_t, int64_t, int64_t, int64_t, float*, int);
template void embedding_backward<double>(const double*, const int64_t*, int64_t, int64_t, int64_t, int64_t, double*,
                                         int);

}  // namespace nnx
