// Placeholder driver: straightforward triple loop with the contract of gemm.h. Replaced by the packed,
// register-blocked driver.
#include "gemm/gemm.h"

namespace nnx {

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a, int64_t cs_a,
          const T* b, int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c,
          int nthreads, const Epilogue<T>& ep) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      T s = T(0);
      for (int64_t k = 0; k < K; ++k) s += a[i * rs_a + k * cs_a] * b[k * rs_b + j * cs_b];
      T* cij = c + i * rs_c + j * cs_c;
      *cij = beta == T(0) ? alpha * s : alpha * s + beta * *cij;
    }
  }
  apply_epilogue(ep, 0, 0, M, N, c, rs_c, cs_c);
}

template <class T>
const char* gemm_ukernel_name() { return "naive"; }

template void gemm<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,
                          int64_t, int64_t, float, float*, int64_t, int64_t, int, const Epilogue<float>&);
template void gemm<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double, double*, int64_t, int64_t, int,
                           const Epilogue<double>&);
template const char* gemm_ukernel_name<float>();
template const char* gemm_ukernel_name<double>();

}  // namespace nnx
