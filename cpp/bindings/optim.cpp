#include "bindings/bindings.h"

namespace nnx {
void bind_optim(py::module_& m) {}
}  // namespace nnx
