// torchae::mm(a, b) = a @ b (and torchae::gemm, the same without a gradient) for float32 CPU matrices of any strides:
// the operators of this experiment, on the packed GEMM that now ships as torchae/csrc/gemm.cpp (torchae.matmul).
//
// This file's first version (commit 12b0200) held its own copy of the kernel, measured in README.md; the shipped
// kernel is that one with its work cut into near-equal tiles for the threads (it scaled badly to two threads).
// Including it also defines torchae_gemm's operators: do not load this and torchae.matmul in one process.
#include "../../../torchae/csrc/gemm.cpp"

TORCH_LIBRARY(torchae, m) {
  m.def("mm(Tensor a, Tensor b) -> Tensor");
  m.def("gemm(Tensor a, Tensor b) -> Tensor");
}
TORCH_LIBRARY_IMPL(torchae, CPU, m) {
  m.impl("mm", &gemm);
  m.impl("gemm", &gemm);
}
// torchae::gemm is the kernel alone, with no gradient. The scripts register torchae::mm's gradient in Python.
TORCH_LIBRARY_IMPL(torchae, Autograd, m) { m.impl("gemm", torch::CppFunction::makeFallthrough()); }
