// torchae::mm(a, b) = a @ b (and torchae::gemm, the same without a gradient) for float32 CPU matrices of any strides: a packed single-precision GEMM.
//
// Why: on AMD CPUs the MKL that torch links runs its AVX2 code path even where the CPU has AVX-512; this kernel is
// compiled for the machine it runs on (-march=native), so the same source uses AVX-512 there and AVX2 elsewhere.
// Layout (the usual one of Goto's GEMM): B is packed into NR-wide column panels, each block of A into MR-tall row
// panels, both k-major; a micro-kernel keeps an MR x NR tile of C in vector registers. K is cut into near-equal
// chunks of at most KC, so that a packed B panel stays in the L1 cache.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace {

typedef float vec16 __attribute__((vector_size(64)));
constexpr int64_t MR = 12, NR = 32, KC = 256, MC = 96, NC = 256;

inline vec16 load(const float* p) { vec16 v; std::memcpy(&v, p, sizeof v); return v; }
inline void store(float* p, vec16 v) { std::memcpy(p, &v, sizeof v); }

// C[0:mr, 0:nr] (+)= A_panel (kc x MR) * B_panel (kc x NR).
void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, int64_t mr,
                  int64_t nr, bool accumulate) {
  vec16 acc[MR][2];
  for (int64_t i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = vec16{};
  for (int64_t p = 0; p < kc; ++p) {
    const vec16 b0 = load(b + p * NR), b1 = load(b + p * NR + 16);
    const float* ap = a + p * MR;
#pragma GCC unroll 12
    for (int64_t i = 0; i < MR; ++i) {
      acc[i][0] += ap[i] * b0;
      acc[i][1] += ap[i] * b1;
    }
  }
  if (mr == MR && nr == NR) {
    for (int64_t i = 0; i < MR; ++i) {
      float* row = c + i * ldc;
      if (accumulate) {
        acc[i][0] += load(row);
        acc[i][1] += load(row + 16);
      }
      store(row, acc[i][0]);
      store(row + 16, acc[i][1]);
    }
    return;
  }
  alignas(64) float tile[MR][NR];
  for (int64_t i = 0; i < MR; ++i) {
    store(tile[i], acc[i][0]);
    store(tile[i] + 16, acc[i][1]);
  }
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.f) + tile[i][j];
}

at::Tensor mm(const at::Tensor& a_in, const at::Tensor& b_in) {
  TORCH_CHECK(a_in.dim() == 2 && b_in.dim() == 2 && a_in.size(1) == b_in.size(0),
              "torchae::mm multiplies matrices (M, K) @ (K, N), got ", a_in.sizes(), " @ ", b_in.sizes());
  TORCH_CHECK(a_in.scalar_type() == at::kFloat && b_in.scalar_type() == at::kFloat && a_in.device().is_cpu() &&
                  b_in.device().is_cpu(),
              "torchae::mm takes float32 CPU tensors");
  const int64_t M = a_in.size(0), K = a_in.size(1), N = b_in.size(1);
  at::Tensor c_out = at::empty({M, N}, a_in.options());
  if (M == 0 || N == 0) return c_out;
  if (K == 0) return c_out.zero_();
  const float* a = a_in.data_ptr<float>();
  const float* b = b_in.data_ptr<float>();
  float* c = c_out.data_ptr<float>();
  const int64_t sam = a_in.stride(0), sak = a_in.stride(1), sbk = b_in.stride(0), sbn = b_in.stride(1);
  const int64_t panels = (N + NR - 1) / NR;
  const int64_t chunks = (K + KC - 1) / KC, kc_max = (K + chunks - 1) / chunks;
  const int64_t row_blocks = (M + MC - 1) / MC, panels_per_tile = NC / NR;
  const int64_t column_tiles = (panels + panels_per_tile - 1) / panels_per_tile;
  std::vector<float> packed_b(panels * kc_max * NR);
  for (int64_t pc = 0; pc < K; pc += kc_max) {
    const int64_t kc = std::min(kc_max, K - pc);
    at::parallel_for(0, panels, 1, [&](int64_t first, int64_t last) {
      for (int64_t jp = first; jp < last; ++jp) {
        float* dst = packed_b.data() + jp * kc * NR;
        const int64_t j0 = jp * NR, nr = std::min(NR, N - j0);
        for (int64_t p = 0; p < kc; ++p) {
          const float* src = b + (pc + p) * sbk + j0 * sbn;
          if (sbn == 1 && nr == NR) {
            std::memcpy(dst + p * NR, src, NR * sizeof(float));
          } else {
            for (int64_t j = 0; j < nr; ++j) dst[p * NR + j] = src[j * sbn];
            for (int64_t j = nr; j < NR; ++j) dst[p * NR + j] = 0.f;
          }
        }
      }
    });
    // Tiles of MC rows x NC columns, each thread packing the rows of A its tiles need.
    at::parallel_for(0, row_blocks * column_tiles, 1, [&](int64_t first, int64_t last) {
      std::vector<float> packed_a(MC * kc);
      int64_t packed_block = -1;
      for (int64_t tile = first; tile < last; ++tile) {
        const int64_t block = tile / column_tiles, column_tile = tile % column_tiles;
        const int64_t i0 = block * MC, mc = std::min(MC, M - i0);
        if (block != packed_block) {
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = std::min(MR, mc - ir);
            float* dst = packed_a.data() + ir * kc;
            for (int64_t p = 0; p < kc; ++p) {
              const float* src = a + (i0 + ir) * sam + (pc + p) * sak;
              for (int64_t i = 0; i < mr; ++i) dst[p * MR + i] = src[i * sam];
              for (int64_t i = mr; i < MR; ++i) dst[p * MR + i] = 0.f;
            }
          }
          packed_block = block;
        }
        const int64_t last_panel = std::min(panels, (column_tile + 1) * panels_per_tile);
        for (int64_t jp = column_tile * panels_per_tile; jp < last_panel; ++jp) {
          const int64_t j0 = jp * NR, nr = std::min(NR, N - j0);
          for (int64_t ir = 0; ir < mc; ir += MR)
            micro_kernel(kc, packed_a.data() + ir * kc, packed_b.data() + jp * kc * NR, c + (i0 + ir) * N + j0, N,
                         std::min(MR, mc - ir), nr, pc > 0);
        }
      }
    });
  }
  return c_out;
}

}  // namespace

TORCH_LIBRARY(torchae, m) { m.def("mm(Tensor a, Tensor b) -> Tensor"); }
TORCH_LIBRARY_IMPL(torchae, CPU, m) { m.impl("mm", &mm); }
// torchae::gemm is the kernel alone, with no gradient. torchae.layers registers torchae::mm's gradient in Python
// (a torch.autograd.Function, which torch.func.grad supports; a C++ one it refuses), whose products are gemm.
TORCH_LIBRARY_FRAGMENT(torchae, m) { m.def("gemm(Tensor a, Tensor b) -> Tensor"); }
TORCH_LIBRARY_IMPL(torchae, CPU, m) { m.impl("gemm", &mm); }
TORCH_LIBRARY_IMPL(torchae, Autograd, m) { m.impl("gemm", torch::CppFunction::makeFallthrough()); }
