// The KV-state pieces of LASP (core/ops/kv_state.h) on the GPU at the chunk
// shapes of sequence parallelism: batch 1, 16 heads of d = 64 (tnl-385m) and
// d = 128 (tnl-1b), bf16 operands and f32 states, C tokens per rank. Each
// configuration is first checked against the CPU reference (states within
// 1e-5, bf16 operands within 1e-2, as the GPU tests), then every op is timed
// alone (CUDA events, median of repeats). FLOPs are the op plan's (*_flops).
// Prints a check line per configuration, then one line per op:
//   kv_state_check C d state_rel_err operand_rel_err ok|FAILED
//   kv_state op C d ms tflops
// Exit status 1 when a check fails. Usage: kv_state_bench [C ...] (default 8192 32768)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench/cuda_timing.h"
#include "core/cuda/cuda_check.h"
#include "core/ops/kv_state.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace {

using linpar::bench::median_ms;

using linpar::Device;
using linpar::DType;
using linpar::Shape;
using linpar::Tensor;

// A CPU f32 tensor of N(0, 1) values rounded to `exact_in` (so that the GPU
// copy in that dtype holds the same numbers).
Tensor random_tensor(const Shape& shape, uint64_t seed, DType exact_in) {
  Tensor t = Tensor::empty(shape, DType::F32);
  linpar::CounterRng rng(seed, "kv_state_bench");
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = static_cast<float>(rng.normal(static_cast<uint64_t>(i)));
  return t.to(exact_in).to(DType::F32);
}

// ‖got − want‖ / ‖want‖; infinity when got holds a NaN.
double relative_error(const Tensor& got, const Tensor& want) {
  const Tensor g = got.to(Device::CPU).to(DType::F32);
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < g.numel(); ++i) {
    const double x = g.data<float>()[i], y = want.data<float>()[i];
    if (std::isnan(x)) return INFINITY;
    diff += (x - y) * (x - y);
    norm += y * y;
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}


}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths;
  for (int i = 1; i < argc; ++i) lengths.push_back(std::atoll(argv[i]));
  if (lengths.empty()) lengths = {8192, 32768};
  const int64_t B = 1, H = 16;
  std::vector<double> slopes;  // TransNormerLLM's: 2^{−8(h+1)/H}
  for (int64_t h = 0; h < H; ++h)
    slopes.push_back(std::pow(2.0, -8.0 * static_cast<double>(h + 1) / H));
  bool all_ok = true;
  for (int64_t C : lengths) {
    for (int64_t d : {64, 128}) {
      const Shape rows{B, H, C, d}, state{B, H, d, d};
      const Tensor q = random_tensor(rows, 1, DType::BF16), k = random_tensor(rows, 2, DType::BF16),
                   v = random_tensor(rows, 3, DType::BF16),
                   d_o = random_tensor(rows, 4, DType::BF16),
                   kv_in = random_tensor(state, 5, DType::F32),
                   d_kv = random_tensor(state, 6, DType::F32);
      auto gpu = [](const Tensor& t) { return t.to(DType::BF16).to(Device::CUDA); };
      const Tensor q_g = gpu(q), k_g = gpu(k), v_g = gpu(v), d_o_g = gpu(d_o);
      const Tensor kv_in_g = kv_in.to(Device::CUDA), d_kv_g = d_kv.to(Device::CUDA);
      auto zeros = [](const Shape& s, DType t, Device dev) { return Tensor::zeros(s, t, dev); };

      // Check: every output from zero (overwritten states from NaN on the GPU).
      Tensor kv = zeros(state, DType::F32, Device::CPU), dk = zeros(rows, DType::F32, Device::CPU),
             dv = dk.clone(), o = dk.clone(), dq = dk.clone(), d_kv_in = kv.clone();
      linpar::chunk_state_forward(k, v, slopes, kv);
      linpar::chunk_state_backward(k, v, slopes, d_kv, dk, dv);
      linpar::inter_chunk_forward(q, slopes, kv_in, o);
      linpar::inter_chunk_backward(q, slopes, kv_in, d_o, dq, d_kv_in);
      Tensor kv_g = Tensor::empty(state, DType::F32);
      std::fill_n(kv_g.data<float>(), kv_g.numel(), std::nanf(""));
      kv_g = kv_g.to(Device::CUDA);
      Tensor dk_g = zeros(rows, DType::BF16, Device::CUDA), dv_g = dk_g.clone(), o_g = dk_g.clone(),
             dq_g = dk_g.clone(), d_kv_in_g = zeros(state, DType::F32, Device::CUDA);
      linpar::chunk_state_forward(k_g, v_g, slopes, kv_g);
      linpar::chunk_state_backward(k_g, v_g, slopes, d_kv_g, dk_g, dv_g);
      linpar::inter_chunk_forward(q_g, slopes, kv_in_g, o_g);
      linpar::inter_chunk_backward(q_g, slopes, kv_in_g, d_o_g, dq_g, d_kv_in_g);
      const double state_err =
          std::max(relative_error(kv_g, kv), relative_error(d_kv_in_g, d_kv_in));
      const double operand_err = std::max({relative_error(dk_g, dk), relative_error(dv_g, dv),
                                           relative_error(o_g, o), relative_error(dq_g, dq)});
      const bool ok = state_err < 1e-5 && operand_err < 1e-2;
      all_ok = all_ok && ok;
      std::printf("kv_state_check %ld %ld %.2e %.2e %s\n", static_cast<long>(C),
                  static_cast<long>(d), state_err, operand_err, ok ? "ok" : "FAILED");

      const int reps = C <= 8192 ? 20 : 10;
      auto report = [&](const char* op, int64_t flops, auto&& run) {
        const double ms = median_ms(run, reps);
        std::printf("kv_state %s %ld %ld %.4f %.2f\n", op, static_cast<long>(C),
                    static_cast<long>(d), ms, static_cast<double>(flops) / (ms * 1e9));
      };
      report("chunk_state_forward", linpar::chunk_state_forward_flops(B, H, C, d, d),
             [&] { linpar::chunk_state_forward(k_g, v_g, slopes, kv_g); });
      report("chunk_state_backward", linpar::chunk_state_backward_flops(B, H, C, d, d),
             [&] { linpar::chunk_state_backward(k_g, v_g, slopes, d_kv_g, dk_g, dv_g); });
      report("inter_chunk_forward", linpar::inter_chunk_forward_flops(B, H, C, d, d),
             [&] { linpar::inter_chunk_forward(q_g, slopes, kv_in_g, o_g); });
      report("inter_chunk_backward", linpar::inter_chunk_backward_flops(B, H, C, d, d),
             [&] { linpar::inter_chunk_backward(q_g, slopes, kv_in_g, d_o_g, dq_g, d_kv_in_g); });
    }
  }
  return all_ok ? 0 : 1;
}
