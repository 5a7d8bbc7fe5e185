#include "common/malloc_tuning.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

extern char** environ;

namespace nnx {
namespace {
bool g_tuned = false;

bool user_set_malloc_env() {
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "MALLOC_", 7) == 0 || std::strncmp(*e, "GLIBC_TUNABLES=", 15) == 0) return true;
  return false;
}
}  // namespace

bool tune_malloc_for_training() {
#if defined(__GLIBC__)
  const char* opt = std::getenv("NNX_MALLOC_TUNING");
  if ((opt && std::strcmp(opt, "0") == 0) || user_set_malloc_env()) return false;
  // 32 MiB is the largest mmap threshold glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2).
  g_tuned = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
  return g_tuned;
#else
  return false;
#endif
}

bool malloc_tuned() { return g_tuned; }

}  // namespace nnx
