// The library's thread count. Kernels take an explicit `nthreads` argument (so a caller that already
// runs in parallel can ask for 1); operators pass num_threads(). Builds without OpenMP run single-threaded.
#pragma once
#include <cstdint>

#if defined(NNX_OPENMP)
#include <omp.h>
#endif

namespace nnx {

int num_threads();
void set_num_threads(int n);
bool openmp_enabled();

// Number of threads worth using for `work` units when one thread should get at least `grain` units.
inline int threads_for(int64_t work, int64_t grain, int nthreads) {
  if (nthreads <= 1 || work <= grain) return 1;
  int64_t t = work / grain;
  return t < nthreads ? static_cast<int>(t) : nthreads;
}

inline int thread_index() {
#if defined(NNX_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace nnx
