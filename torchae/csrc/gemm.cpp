// A packed single-precision GEMM for CPUs on which torch's MKL runs narrower vector code than the CPU has, and
// torch's CPU kernels of aten::mm and aten::addmm (float32) routed through it while it is enabled.
//
// Why: the MKL that torch links picks its kernels by processor and runs its AVX2 code on AMD CPUs, also where the
// CPU has full-width AVX-512 (Zen 5). This file is compiled for the machine it runs on (-march=native), so the same
// source is AVX-512 there (torchae/matmul.py builds it, once per CPU, and chooses where it is used).
// Layout (Goto's GEMM): B is packed into NR-wide column panels, each block of A into MR-tall row panels, both
// k-major; a micro-kernel keeps an MR x NR tile of C in vector registers. K is cut into near-equal chunks of at
// most KC, so that a packed B panel stays in the L1 cache.
#include <ATen/ATen.h>
#include <ATen/CPUFunctions.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

namespace {

typedef float vec16 __attribute__((vector_size(64)));
constexpr int64_t MR = 12, NR = 32, KC = 256, MC_MAX = 96, NC_MAX = 256;

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

// c_out (contiguous, M x N) = (or +=, with accumulate) a_in @ b_in; a_in and b_in of any strides.
void gemm_into(const at::Tensor& a_in, const at::Tensor& b_in, at::Tensor& c_out, bool accumulate) {
  const int64_t M = a_in.size(0), K = a_in.size(1), N = b_in.size(1);
  if (M == 0 || N == 0) return;
  if (K == 0) { if (!accumulate) c_out.zero_(); return; }
  const float* a = a_in.data_ptr<float>();
  const float* b = b_in.data_ptr<float>();
  float* c = c_out.data_ptr<float>();
  const int64_t sam = a_in.stride(0), sak = a_in.stride(1), sbk = b_in.stride(0), sbn = b_in.stride(1);
  const int64_t panels = (N + NR - 1) / NR;
  const int64_t chunks = (K + KC - 1) / KC, kc_max = (K + chunks - 1) / chunks;
  // Work is cut into tiles of whole register panels, near-equal in size and, where there are enough rows, a
  // multiple of the thread count in number, so that no thread waits for another's extra tile.
  const int64_t row_panels = (M + MR - 1) / MR, threads = at::get_num_threads();
  int64_t row_blocks = (row_panels * MR + MC_MAX - 1) / MC_MAX;
  if (row_panels >= threads) row_blocks = std::min(row_panels, (row_blocks + threads - 1) / threads * threads);
  const int64_t MC = (row_panels + row_blocks - 1) / row_blocks * MR;
  row_blocks = (M + MC - 1) / MC;
  const int64_t column_tiles = (panels + NC_MAX / NR - 1) / (NC_MAX / NR);
  const int64_t panels_per_tile = (panels + column_tiles - 1) / column_tiles;
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
    // Tiles of MC rows x panels_per_tile panels, each thread packing the rows of A its tiles need.
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
                         std::min(MR, mc - ir), nr, accumulate || pc > 0);
        }
      }
    });
  }
}

// Where the packed kernel runs instead of MKL's: float32 matrices, products of at least 2^20 multiply-adds (below
// that, packing and threading cost more than the wider vectors save: the batch-16 steps measured slower) and
// results of at most 2^20 elements (larger ones are bound by memory, where MKL's stores are faster: the conv
// network's 50,176-row products measured slower).
bool routed(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && a.dim() == 2 && b.dim() == 2 &&
         a.size(1) == b.size(0) && !a.is_conj() && !b.is_conj() && !a.is_neg() && !b.is_neg() &&
         a.size(0) * a.size(1) * b.size(1) >= (int64_t{1} << 20) && a.size(0) * b.size(1) <= (int64_t{1} << 20);
}

// An out= tensor the kernel can write directly: float32, contiguous, of the result's shape (anything else, torch's
// kernel resizes or writes through strides).
bool fits(const at::Tensor& out, const at::Tensor& a, const at::Tensor& b) {
  return out.scalar_type() == at::kFloat && out.dim() == 2 && out.size(0) == a.size(0) && out.size(1) == b.size(1) &&
         out.is_contiguous();
}

bool unit(const at::Scalar& s) { return !s.isComplex() && s.toDouble() == 1.0; }

std::atomic<int64_t> routed_calls{0};

at::Tensor gemm(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
              "torchae_gemm::gemm multiplies matrices (M, K) @ (K, N), got ", a.sizes(), " @ ", b.sizes());
  TORCH_CHECK(a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && a.device().is_cpu() &&
                  b.device().is_cpu(),
              "torchae_gemm::gemm takes float32 CPU tensors");
  at::Tensor c = at::empty({a.size(0), b.size(1)}, a.options());
  gemm_into(a, b, c, false);
  return c;
}

// The aten kernels below are the CPU kernels of torch (at::cpu::*, which do not dispatch again) wherever the
// product is not routed.
at::Tensor mm(const at::Tensor& a, const at::Tensor& b) {
  if (!routed(a, b)) return at::cpu::mm(a, b);
  routed_calls++;
  return gemm(a, b);
}

at::Tensor& mm_out(const at::Tensor& a, const at::Tensor& b, at::Tensor& out) {
  if (!routed(a, b) || !fits(out, a, b) || out.is_alias_of(a) || out.is_alias_of(b)) return at::cpu::mm_out(out, a, b);
  routed_calls++;
  gemm_into(a, b, out, false);
  return out;
}

at::Tensor& addmm_out(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b, const at::Scalar& beta,
                      const at::Scalar& alpha, at::Tensor& out) {
  if (!routed(a, b) || !fits(out, a, b) || !unit(beta) || !unit(alpha) || bias.scalar_type() != at::kFloat ||
      out.is_alias_of(bias) || out.is_alias_of(a) || out.is_alias_of(b))
    return at::cpu::addmm_out(out, bias, a, b, beta, alpha);
  routed_calls++;
  out.copy_(bias.expand({a.size(0), b.size(1)}));
  gemm_into(a, b, out, true);
  return out;
}

at::Tensor addmm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b, const at::Scalar& beta,
                 const at::Scalar& alpha) {
  if (!routed(a, b) || !unit(beta) || !unit(alpha) || bias.scalar_type() != at::kFloat)
    return at::cpu::addmm(bias, a, b, beta, alpha);
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  return addmm_out(bias, a, b, beta, alpha, out);
}

// The registrations of the aten kernels: made by set_routing(true), removed (torch's own kernels back) by
// set_routing(false).
std::unique_ptr<torch::Library> aten_kernels;

bool set_routing(bool on) {
  const bool was_on = aten_kernels != nullptr;
  if (on && !was_on) {
    aten_kernels =
        std::make_unique<torch::Library>(torch::Library::IMPL, "aten", c10::DispatchKey::CPU, __FILE__, __LINE__);
    aten_kernels->impl("mm", TORCH_FN(mm));
    aten_kernels->impl("mm.out", TORCH_FN(mm_out));
    aten_kernels->impl("addmm", TORCH_FN(addmm));
    aten_kernels->impl("addmm.out", TORCH_FN(addmm_out));
  } else if (!on) {
    aten_kernels.reset();
  }
  return was_on;
}

int64_t routed_count() { return routed_calls.load(); }

}  // namespace

TORCH_LIBRARY(torchae_gemm, m) {
  m.def("gemm(Tensor a, Tensor b) -> Tensor");
  m.def("set_routing(bool on) -> bool", &set_routing);
  m.def("routed_calls() -> int", &routed_count);
}
TORCH_LIBRARY_IMPL(torchae_gemm, CPU, m) { m.impl("gemm", &gemm); }
