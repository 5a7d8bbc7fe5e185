#include "bindings/bindings.h"

namespace nnx {
void bind_pool(py::module_& m) {}
}  // namespace nnx
