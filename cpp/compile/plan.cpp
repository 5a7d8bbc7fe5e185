#include "compile/plan.h"

namespace nnx {

void Plan::run(int nthreads) const {
  for (const KernelCall& call : calls_) call(nthreads);
}

}  // namespace nnx
