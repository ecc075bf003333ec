// One training step of a preset on one GPU: bf16 compute, f32 master weights
// and AdamW, the real Trainer (micro-batch = global batch, no accumulation).
// Prints, after the untimed warmup steps, the median step over the timed ones:
//   train_linpar <model> <seq_len> <batch> <ms_per_step> <tokens_per_s> <model_tflop_per_step> <mfu>
// Model FLOPs are the matrix products the step executes, from the model's op
// plan: the projections, SGLU and LM head (2·m·n·k forward, twice that
// backward: 6·params·tokens) and lightning attention's block-wise products.
// The same count as bench/tnl_torch.py's, so the two lines compare directly.
// mfu = model FLOPs / step time / peak, the peak being the measured bf16 GEMM
// rate passed in (nan when 0).
// Usage: train_bench <token file> <model> <seq_len> <batch> [steps] [warmup] [peak_tflops]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/cuda/cuda_runtime.h"
#include "core/error.h"
#include "core/op_timing.h"
#include "model/config.h"
#include "model/plan_model.h"
#include "parallel/trainer.h"
#include "sim/memory.h"
#include "sim/op_costs.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int status = 0;
  try {
    if (argc < 5) {
      std::fprintf(stderr, "usage: train_bench <token file> <model> <seq_len> <batch> [steps] [warmup] [peak_tflops]\n");
      MPI_Finalize();
      return 2;
    }
    linpar::TrainOptions o;
    o.train_path = argv[1];
    o.model = linpar::preset_config(argv[2]);
    o.layout.seq_len = std::atoll(argv[3]);
    o.layout.micro_batch = o.layout.global_batch = std::atoll(argv[4]);
    const int steps = argc > 5 ? std::atoi(argv[5]) : 10;
    const int warmup = argc > 6 ? std::atoi(argv[6]) : 3;
    const double peak = argc > 7 ? std::atof(argv[7]) : 0.0;
    o.steps = o.schedule.total_steps = steps + warmup;
    o.schedule.max_lr = 3e-4;
    o.device = linpar::Device::CUDA;
    o.dtype = linpar::DType::BF16;
    o.progress = linpar::TrainOptions::Progress::Quiet;
    // LINPAR_RECOMPUTE=none|selective|full: the activation recomputation.
    if (const char* r = std::getenv("LINPAR_RECOMPUTE"))
      o.layout.recompute = linpar::recompute_from_name(r);
    linpar::ProcessGrid grid({1, 1, 1, 1}, MPI_COMM_WORLD);
    linpar::Trainer trainer(o, grid);
    const linpar::OpPlan plan = linpar::plan_model(trainer.model().config(), {}, {},
                                                   {o.layout.micro_batch, o.layout.seq_len, 2});
    double flops = 0;
    for (const linpar::PlannedOp& op : plan.ops()) {
      // Matrix products and attention: the simulator's classes of the same ops.
      if (op.kind != linpar::OpKind::Memory) flops += static_cast<double>(op.flops);
    }
    std::vector<double> ms, compute_ms, optimizer_ms;
    for (int s = 0; s < warmup + steps; ++s) {
      linpar::cuda::synchronize();
      const auto start = std::chrono::steady_clock::now();
      const linpar::StepResult r = trainer.train_step();  // ends with the loss copied to the host
      if (s >= warmup) {
        compute_ms.push_back(r.compute_s * 1e3);
        optimizer_ms.push_back(r.optimizer_s * 1e3);
      }
      linpar::cuda::synchronize();
      const double elapsed =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (s >= warmup) ms.push_back(elapsed);
    }
    std::sort(ms.begin(), ms.end());
    std::sort(compute_ms.begin(), compute_ms.end());
    std::sort(optimizer_ms.begin(), optimizer_ms.end());
    const double median = ms[ms.size() / 2];
    const double tokens = static_cast<double>(o.layout.micro_batch * o.layout.seq_len);
    const double mfu = peak > 0 ? flops / (median * 1e-3) / (peak * 1e12) : std::nan("");
    std::printf("train_linpar %s %lld %lld %.2f %.0f %.3f %.4f\n", argv[2],
                static_cast<long long>(o.layout.seq_len),
                static_cast<long long>(o.layout.micro_batch), median, tokens / (median * 1e-3),
                flops / 1e12, mfu);
    std::printf("# phases (median ms): forward+backward %.2f, gradient norm + clip + AdamW %.2f\n",
                compute_ms[compute_ms.size() / 2], optimizer_ms[optimizer_ms.size() / 2]);
    // LINPAR_OP_TIMES=1: one more step with every op timed (CUDA events).
    if (std::getenv("LINPAR_OP_TIMES") != nullptr) {
      linpar::reset_op_times();
      linpar::enable_op_timing(true);
      trainer.train_step();
      linpar::enable_op_timing(false);
      linpar::print_op_times();
    }
    const linpar::cuda::MemoryStats m = linpar::cuda::memory_stats();
    std::printf("# peak GPU memory in use %.2f GiB, reserved %.2f GiB\n",
                static_cast<double>(m.peak_in_use_bytes) / (1 << 30),
                static_cast<double>(m.reserved_bytes) / (1 << 30));
    // Beside it, what `linpar sim` says the layout needs (sim/memory.h).
    linpar::sim::MemoryLayout l;
    static_cast<linpar::Layout&>(l) = o.layout;
    l.element_bytes = 2;
    const linpar::sim::MemoryBreakdown model = linpar::sim::memory_per_gpu(o.model, l);
    std::printf(
        "memory_linpar %s %lld %lld %s measured %lld model %lld (%+.2f%%): %s\n", argv[2],
        static_cast<long long>(o.layout.seq_len), static_cast<long long>(o.layout.micro_batch),
        linpar::recompute_name(o.layout.recompute), static_cast<long long>(m.peak_in_use_bytes),
        static_cast<long long>(model.total),
        100.0 * (static_cast<double>(m.peak_in_use_bytes) - static_cast<double>(model.total)) /
            static_cast<double>(model.total),
        linpar::sim::memory_summary(model).c_str());
  } catch (const linpar::UserError& e) {
    std::fprintf(stderr, "train_bench: %s\n", e.what());
    status = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_bench: %s\n", e.what());
    status = 1;
  }
  MPI_Finalize();
  return status;
}
