// The library's thread count. Kernels take an explicit `nthreads` argument (so a caller that already
// runs in parallel can ask for 1); operators pass num_threads(). Builds without OpenMP run single-threaded.
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>

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

// How much work one thread should get at least before another thread is woken: a named constant per
// call site (kElementwiseGrain for one pass over memory, etc.), so the trade-off is stated where it is made.
struct Grain {
  int64_t units;
};
// One pass over memory: below this many elements per thread, waking a thread costs more than it saves.
constexpr Grain kElementwiseGrain{1 << 15};

// The one parallel loop of the kernel families: calls body(begin, end) on at most `nthreads` contiguous,
// disjoint ranges covering [0, n), each at least `grain` units (one range when n is small), cut at
// multiples of `align` (e.g. 16 floats, so ranges start on a cache line). Ranges are handed out statically.
// Results are thread-count independent whenever body's result for an element does not depend on where its
// range starts; families whose sums cross elements reduce in fixed-size chunks (parallel_for_each) instead.
// An exception thrown by body is rethrown on the calling thread after the loop.
// The length of parallel_for's ranges over n units for nt threads, and how many ranges hold units (align can
// leave threads without any: 3 rows in whole tiles of 8 are one range). With one, the body runs on the calling
// thread, outside any parallel region, so a parallel loop inside it still gets the threads (the recurrent
// family's per-step products for a call of one to a few sequences).
inline int64_t parallel_for_range(int64_t n, int nt, int64_t align) {
  const int64_t per = (n + nt - 1) / nt;
  return (per + align - 1) / align * align;
}

inline int parallel_for_ranges(int64_t n, Grain grain, int nthreads, int64_t align = 1) {
  if (n <= 0) return 0;
  const int nt = threads_for(n, std::max<int64_t>(grain.units, 1), nthreads);
  if (nt <= 1) return 1;
  const int64_t per = parallel_for_range(n, nt, align);
  return static_cast<int>((n + per - 1) / per);
}

template <class F>
void parallel_for(int64_t n, Grain grain, int nthreads, F body, int64_t align = 1) {
  if (n <= 0) return;
  const int nt = threads_for(n, std::max<int64_t>(grain.units, 1), nthreads);
  const int64_t per = nt <= 1 ? n : parallel_for_range(n, nt, align);
  if (per >= n) {
    body(int64_t{0}, n);
    return;
  }
  std::exception_ptr err = nullptr;
#if defined(NNX_OPENMP)
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
  for (int t = 0; t < nt; ++t) {
    const int64_t b = std::min(n, t * per), e = std::min(n, b + per);
    if (b >= e) continue;
    try {
      body(b, e);
    } catch (...) {
#if defined(NNX_OPENMP)
#pragma omp critical(nnx_parallel_for_error)
#endif
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}

// Calls body(i) for every task i in [0, tasks), split statically across threads; `grain` is the number of
// tasks worth one thread. For per-image, per-plane or per-chunk work whose results land in disjoint places.
template <class F>
void parallel_for_each(int64_t tasks, Grain grain, int nthreads, F body) {
  parallel_for(tasks, grain, nthreads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) body(i);
  });
}

inline int thread_index() {
#if defined(NNX_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace nnx
