#include "common/threads.h"

#include <cstdlib>
#include <thread>

namespace nnx {
namespace {

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
#if defined(NNX_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

int num_threads() {
#if defined(NNX_OPENMP)
  // Read OpenMP's own setting so that threadpoolctl (which calls omp_set_num_threads) limits nnx too.
  static const bool init = [] { omp_set_num_threads(default_threads()); return true; }();
  (void)init;
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  if (n < 1) n = 1;
#if defined(NNX_OPENMP)
  num_threads();
  omp_set_num_threads(n);
#endif
}

bool openmp_enabled() {
#if defined(NNX_OPENMP)
  return true;
#else
  return false;
#endif
}

}  // namespace nnx
