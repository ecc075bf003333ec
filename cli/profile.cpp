// linpar profile: measures what the simulator needs to cost a step on this
// machine — matrix-product rates at the model's GEMM shapes (forward and both
// backward products), the lightning-attention kernels at the model's head
// shapes, memory copy bandwidth, and (under mpirun) collective bus bandwidth
// per group size — and writes them as JSON (format "linpar-profile-1",
// docs/profile.md). Bus bandwidth follows nccl-tests' definition: the
// algorithm bandwidth (bytes / time) times 2(n−1)/n for all-reduce, (n−1)/n
// for all-gather, reduce-scatter and all-to-all, 1 for send/recv.
#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/cuda/cuda_runtime.h"
#include "core/error.h"
#include "core/median_time.h"
#include "core/op_timing.h"
#include "core/ops/activation.h"
#include "core/ops/gemm.h"
#include "core/ops/lightning_attention.h"
#include "core/timer.h"
#include "parallel/hybrid_communicator.h"
#include "parallel/nccl_communicator.h"

namespace linpar::cli {

namespace {

// Median seconds of `reps` timed calls after one untimed call, the GPU
// synchronised after each (core/median_time.h, Clock::Wall: the rates the
// simulator adds op after op).
double median_seconds(const std::function<void()>& run, int reps, Device device) {
  return linpar::median_seconds(run, reps, device, /*warmups=*/1, Clock::Wall);
}

Tensor filled(const Shape& shape, DType dtype, Device device, float value) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::fill_n(t.data<float>(), t.numel(), value);
  return device == Device::CUDA ? t.to(dtype).to(device) : t.to(dtype);
}

struct GemmShape {
  std::string layer;  // e.g. "qkvu_proj"
  int64_t out, in;    // the weight is [out, in]
};

nlohmann::json profile_gemms(const ModelConfig& m, int64_t rows, int tp, DType dtype, Device device,
                             int reps) {
  const int64_t D = m.width, F = m.glu_dim, V = m.vocab_size;
  const std::vector<GemmShape> shapes = {{"qkvu_proj", 4 * D / tp, D},
                                         {"out_proj", D, D / tp},
                                         {"channel_mixer.l1", F / tp, D},
                                         {"channel_mixer.l3", D, F / tp},
                                         {"lm_head", V / tp, D}};
  // Weight gradients accumulate in f32 on the GPU (mixed precision).
  const DType grad_dtype = device == Device::CUDA ? DType::F32 : dtype;
  nlohmann::json out = nlohmann::json::array();
  for (const GemmShape& s : shapes) {
    const Tensor x = filled({rows, s.in}, dtype, device, 0.01f), w = filled({s.out, s.in}, dtype, device, 0.01f);
    const Tensor dy = filled({rows, s.out}, dtype, device, 0.01f);
    Tensor y = Tensor::empty({rows, s.out}, dtype, device), dx = Tensor::empty({rows, s.in}, dtype, device);
    Tensor dw = Tensor::zeros({s.out, s.in}, grad_dtype, device), none;
    struct Product {
      const char* pass;
      int64_t m, n, k;
      std::function<void()> run;
    };
    const Product products[] = {
        {"forward", rows, s.out, s.in, [&] { linear_forward(x, w, y); }},
        {"backward_input", rows, s.in, s.out, [&] { linear_backward(dy, x, w, dx, none); }},
        {"backward_weight", s.out, s.in, rows, [&] { linear_backward(dy, x, w, none, dw); }}};
    for (const Product& p : products) {
      const double seconds = median_seconds(p.run, reps, device);
      const double flops = 2.0 * static_cast<double>(p.m) * static_cast<double>(p.n) * static_cast<double>(p.k);
      out.push_back({{"layer", s.layer}, {"pass", p.pass}, {"m", p.m}, {"n", p.n}, {"k", p.k},
                     {"dtype", dtype_name(dtype)}, {"seconds", seconds}, {"tflops", flops / seconds / 1e12}});
    }
  }
  return out;
}

nlohmann::json profile_attention(const ModelConfig& m, int64_t batch, int64_t length, int tp,
                                 DType dtype, Device device, int reps) {
  const int64_t H = m.n_heads / tp, d = m.head_dim();
  std::vector<double> slopes;
  const std::vector<double> all = m.layer_slopes(0);
  slopes.assign(all.begin(), all.begin() + H);
  nlohmann::json out = nlohmann::json::array();
  // dk = d, and 2d on LRPE layers (cos and sin halves).
  std::vector<int64_t> key_dims = {d};
  if (m.lrpe != LrpeLayers::None) key_dims.push_back(2 * d);
  for (int64_t dk : key_dims) {
    const Tensor q = filled({batch, H, length, dk}, dtype, device, 0.01f), k = q.clone();
    const Tensor v = filled({batch, H, length, d}, dtype, device, 0.01f);
    Tensor o = Tensor::empty(v.shape(), dtype, device), dq = Tensor::empty(q.shape(), dtype, device),
           dk_ = Tensor::empty(q.shape(), dtype, device), dv = Tensor::empty(v.shape(), dtype, device), none;
    const double fwd = median_seconds(
        [&] { lightning_attention_forward(q, k, v, slopes, m.attention_block, none, o, none); }, reps, device);
    const double bwd = median_seconds(
        [&] {
          lightning_attention_backward(q, k, v, slopes, m.attention_block, none, v, none, dq, dk_, dv, none);
        },
        reps, device);
    const double flops_fwd = static_cast<double>(
        lightning_attention_forward_flops(batch, H, length, dk, d, m.attention_block, false, false));
    const double flops_bwd = static_cast<double>(lightning_attention_backward_flops(
        batch, H, length, dk, d, m.attention_block, false, false, false));
    out.push_back({{"batch", batch}, {"heads", H}, {"length", length}, {"dk", dk}, {"dv", d},
                   {"block", m.attention_block}, {"dtype", dtype_name(dtype)},
                   {"forward_seconds", fwd}, {"backward_seconds", bwd},
                   {"forward_tflops", flops_fwd / fwd / 1e12}, {"backward_tflops", flops_bwd / bwd / 1e12}});
  }
  return out;
}

nlohmann::json profile_memory(Device device, int reps) {
  const int64_t elements = device == Device::CUDA ? (int64_t{256} << 20) / 4 : (int64_t{64} << 20) / 4;
  const Tensor a = Tensor::zeros({elements}, DType::F32, device);
  Tensor b = Tensor::empty({elements}, DType::F32, device);
  const double seconds = median_seconds([&] { b.copy_from(a); }, reps, device);
  const double bytes = 2.0 * static_cast<double>(a.nbytes());  // read + write
  return {{"copy_bytes", a.nbytes()}, {"seconds", seconds}, {"gbps", bytes / seconds / 1e9}};
}

// An elementwise product over the model's SGLU activation [rows, F/tp] in
// the compute dtype: what the memory-bound ops of a step actually reach
// (their kernels are not copies: they read several tensors and compute).
nlohmann::json profile_elementwise(const ModelConfig& m, int64_t rows, int tp, DType dtype, Device device,
                                   int reps) {
  const int64_t elements = rows * (m.glu_dim / tp);
  const Tensor a = Tensor::zeros({elements}, dtype, device), b = Tensor::zeros({elements}, dtype, device);
  Tensor y = Tensor::empty({elements}, dtype, device);
  const double seconds = median_seconds([&] { mul_forward(a, b, y); }, reps, device);
  const double bytes = 3.0 * static_cast<double>(a.nbytes());  // two reads, one write
  return {{"op", "mul_forward"}, {"bytes", static_cast<int64_t>(bytes)}, {"dtype", dtype_name(dtype)},
          {"seconds", seconds}, {"gbps", bytes / seconds / 1e9}};
}

// GPU time of `calls` back-to-back launches of `run` on the compute stream
// (CUDA events of the op-timing scopes, so the host's launch and
// synchronisation are not counted), summed over the op names they record.
double timed_gpu_seconds(const std::function<void()>& run, int calls) {
  cuda::synchronize();
  reset_op_times();
  enable_op_timing(true);
  for (int i = 0; i < calls; ++i) run();
  enable_op_timing(false);
  double total = 0;
  for (const OpTime& t : op_times()) total += t.seconds;
  return total;
}

// Compute and a collective at once, as the DDP buckets overlap backward: a
// stream of GEMMs (channel_mixer.l1's forward, the model's largest layer
// product) while every rank all-reduces 64 MiB buffers on the communicator's
// stream, sized so that each alone lasts about as long. σ = the GEMMs' GPU
// time together / alone − 1; ρ from the all-reduces' end: their work
// J·t_alone was done at 1/(1+ρ) during the GEMMs and at full speed after.
nlohmann::json profile_overlap(const ModelConfig& m, int64_t rows, int tp, DType dtype, int reps) {
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  HybridCommunicator group(MPI_COMM_WORLD, "overlap", false);
  const int64_t D = m.width, F = m.glu_dim / tp;
  const Tensor x = filled({rows, D}, dtype, Device::CUDA, 0.01f), w = filled({F, D}, dtype, Device::CUDA, 0.01f);
  Tensor y = Tensor::empty({rows, F}, dtype, Device::CUDA);
  const auto gemm = [&] { linear_forward(x, w, y); };
  const int64_t elements = (int64_t{64} << 20) / 4;
  Tensor buffer = Tensor::zeros({elements}, DType::F32, Device::CUDA);
  const double t_gemm = timed_gpu_seconds(gemm, reps) / reps;
  group.barrier();
  const double t_collective = median_seconds([&] { group.all_reduce(buffer); }, reps, Device::CUDA);
  const int gemms = std::max(1, static_cast<int>(0.02 / t_gemm));  // about 20 ms of GEMMs
  const int collectives = std::max(1, static_cast<int>(std::lround(gemms * t_gemm / t_collective)));
  const double gemm_alone = timed_gpu_seconds(gemm, gemms);
  const double collective_alone = collectives * t_collective;
  std::vector<double> sigma, rho;
  for (int r = 0; r < std::max(3, reps / 3); ++r) {
    group.barrier();
    cuda::synchronize();
    Timer timer;
    std::vector<std::unique_ptr<CommRequest>> pending;
    for (int c = 0; c < collectives; ++c) pending.push_back(group.all_reduce_async(buffer));
    const double gemm_together = timed_gpu_seconds(gemm, gemms);
    for (auto& request : pending) request->wait();
    cuda::synchronize();
    const double end = timer.elapsed_s();
    sigma.push_back(std::max(0.0, gemm_together / gemm_alone - 1));
    // Work left after the GEMMs ran at full speed; the rest at 1/(1+ρ).
    const double after = std::max(0.0, end - gemm_together);
    const double during = collective_alone - after;
    rho.push_back(during > 0 ? std::max(0.0, std::min(gemm_together, end) / during - 1) : 0.0);
  }
  std::sort(sigma.begin(), sigma.end());
  std::sort(rho.begin(), rho.end());
  return {{"gemm", "channel_mixer.l1 forward"}, {"rows", rows}, {"gemm_seconds", t_gemm},
          {"collective", "all_reduce"}, {"ranks", world}, {"bytes", buffer.nbytes()},
          {"collective_seconds", t_collective}, {"gemms", gemms}, {"collectives", collectives},
          {"compute_slowdown", sigma[sigma.size() / 2]}, {"comm_slowdown", rho[rho.size() / 2]}};
}

// Collectives over groups of g consecutive ranks (g = 2, 4, ... up to the
// world), every group measured at once as a layout would run them.
nlohmann::json profile_collectives(Device device, const std::vector<double>& sizes_mb, int reps) {
  int world = 1, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  nlohmann::json out = nlohmann::json::array();
  for (int g = 2; g <= world; g *= 2) {
    if (world % g != 0) continue;
    MPI_Comm comm;
    MPI_Comm_split(MPI_COMM_WORLD, rank / g, rank % g, &comm);
    std::unique_ptr<Communicator> group;
    if (device == Device::CUDA) {
      group = std::make_unique<HybridCommunicator>(comm, "profile", false);
    } else {
      group = std::make_unique<MpiCommunicator>(comm, "profile");
    }
    const double n = g;
    for (double mb : sizes_mb) {
      const int64_t elements = std::max<int64_t>(g, static_cast<int64_t>(mb * (1 << 20) / 4) / g * g);
      Tensor buffer = Tensor::zeros({elements}, DType::F32, device);
      Tensor out_buffer = Tensor::zeros({elements}, DType::F32, device);
      Tensor part = Tensor::zeros({elements / g}, DType::F32, device);
      const double bytes = static_cast<double>(buffer.nbytes());
      auto timed = [&](const char* kind, double factor, const std::function<void()>& run) {
        group->barrier();
        const double seconds = median_seconds(run, reps, device);
        out.push_back({{"kind", kind}, {"ranks", g}, {"bytes", buffer.nbytes()}, {"seconds", seconds},
                       {"algbw_gbps", bytes / seconds / 1e9}, {"busbw_gbps", bytes / seconds / 1e9 * factor}});
      };
      timed("all_reduce", 2 * (n - 1) / n, [&] { group->all_reduce(buffer); });
      timed("all_gather", (n - 1) / n, [&] { group->all_gather(part, out_buffer); });
      timed("reduce_scatter", (n - 1) / n, [&] { group->reduce_scatter(buffer, part); });
      timed("all_to_all", (n - 1) / n, [&] { group->all_to_all(buffer, out_buffer); });
      // Pairs (0,1), (2,3), ...: even ranks send, odd ranks receive.
      const int me = group->rank();
      timed("send_recv", 1.0, [&] {
        if (me % 2 == 0) {
          group->send(buffer, me + 1);
        } else {
          group->recv(buffer, me - 1);
        }
      });
    }
  }
  return out;
}

std::vector<double> parse_sizes(const std::string& text) {
  std::vector<double> sizes;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    double mb = 0;
    try {
      mb = std::stod(item);
    } catch (const std::exception&) {
      user_error("--sizes-mb {}: '{}' is not a number", text, item);
    }
    if (!(mb > 0)) user_error("--sizes-mb {}: sizes must be positive", text);
    sizes.push_back(mb);
  }
  if (sizes.empty()) user_error("--sizes-mb: give at least one size");
  return sizes;
}

}  // namespace

int profile_command(const std::vector<std::string>& args) {
  po::options_description options("profile options");
  add_model_options(options);
  options.add_options()("device", po::value<std::string>()->default_value("cuda"), "cpu or cuda")(
      "dtype", po::value<std::string>(), "f32 or bf16 (default: bf16 on cuda, f32 on cpu)")(
      "seq-len", po::value<int64_t>()->default_value(2048), "tokens per sample")(
      "micro-batch", po::value<int64_t>()->default_value(1), "samples per micro-batch")(
      "tp", po::value<int>()->default_value(1), "tensor-parallel degree of the shapes")(
      "sizes-mb", po::value<std::string>()->default_value("0.00390625,0.0625,1,16,128"),
      "collective payload sizes, MiB per rank (comma-separated)")(
      "reps", po::value<int>()->default_value(10), "timed repetitions (the median is kept)")(
      "out", po::value<std::string>()->default_value("profile.json"), "the profile file to write");
  po::variables_map v;
  if (!parse_options("profile", "[options]", args, options, v)) return 0;
  const ModelConfig m = model_config_from(v);
  const std::string device_name = v["device"].as<std::string>();
  if (device_name != "cpu" && device_name != "cuda") user_error("--device {}: expected cpu or cuda", device_name);
  const Device device = device_name == "cuda" ? Device::CUDA : Device::CPU;
  if (device == Device::CUDA && !cuda::available()) {
    user_error("--device cuda: no CUDA device is present on this machine");
  }
  const std::string dtype_text = v.count("dtype") ? v["dtype"].as<std::string>() : (device == Device::CUDA ? "bf16" : "f32");
  if (dtype_text != "f32" && dtype_text != "bf16") user_error("--dtype {}: expected f32 or bf16", dtype_text);
  if (device == Device::CPU && dtype_text == "bf16") user_error("--dtype bf16: the CPU computes in f32");
  const DType dtype = dtype_text == "bf16" ? DType::BF16 : DType::F32;
  const int64_t seq = v["seq-len"].as<int64_t>(), batch = v["micro-batch"].as<int64_t>();
  if (seq <= 0) user_error("--seq-len {}: must be positive", seq);
  if (batch <= 0) user_error("--micro-batch {}: must be positive", batch);
  const int tp = v["tp"].as<int>();
  if (tp <= 0 || m.n_heads % tp != 0 || m.glu_dim % tp != 0 || m.vocab_size % tp != 0) {
    user_error("--tp {}: must divide the {} heads, glu_dim {} and vocabulary {}", tp, m.n_heads,
               m.glu_dim, m.vocab_size);
  }
  const int reps = v["reps"].as<int>();
  if (reps <= 0) user_error("--reps {}: must be positive", reps);
  const std::vector<double> sizes = parse_sizes(v["sizes-mb"].as<std::string>());
  const std::string path = v["out"].as<std::string>();

  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  nlohmann::json profile = {{"format", "linpar-profile-1"},
                            {"device", device_name},
                            {"ranks", world},
                            {"model", m.name},
                            {"seq_len", seq},
                            {"micro_batch", batch},
                            {"tp", tp}};
  if (device == Device::CUDA) select_local_device();
  // Compute is measured on every rank at once (as training would run) and
  // reported from rank 0.
  // Products and attention at micro-batches 1, 2, 4, ... up to twice the
  // given one: the simulator interpolates their rates by size.
  profile["gemm"] = nlohmann::json::array();
  profile["lightning_attention"] = nlohmann::json::array();
  for (int64_t b = 1; b <= 2 * batch; b = b < batch && 2 * b > batch ? batch : 2 * b) {
    for (auto& g : profile_gemms(m, b * seq, tp, dtype, device, reps)) profile["gemm"].push_back(g);
    for (auto& a : profile_attention(m, b, seq, tp, dtype, device, reps)) {
      profile["lightning_attention"].push_back(a);
    }
  }
  profile["memory"] = profile_memory(device, reps);
  profile["elementwise"] = profile_elementwise(m, batch * seq, tp, dtype, device, reps);
  profile["collectives"] = profile_collectives(device, sizes, reps);
  if (device == Device::CUDA && world > 1) profile["overlap"] = profile_overlap(m, batch * seq, tp, dtype, reps);
  if (rank != 0) return 0;
  const std::string temp = path + ".tmp";
  {
    std::ofstream file(temp);
    if (!file) user_error("--out {}: cannot write the file", path);
    file << profile.dump(2) << "\n";
    if (!file) user_error("--out {}: writing the file failed", path);
  }
  std::filesystem::rename(temp, path);
  fmt::print("profile of {} on {} ({} rank{}), {} x {} tokens, tp {} -> {}\n", m.name, device_name, world,
             world > 1 ? "s" : "", batch, seq, tp, path);
  for (const auto& g : profile["gemm"]) {
    fmt::print("  gemm {:<18} {:<16} {:>6} x {:>6} x {:>6}  {:8.2f} TFLOP/s\n", g["layer"].get<std::string>(),
               g["pass"].get<std::string>(), g["m"].get<int64_t>(), g["n"].get<int64_t>(), g["k"].get<int64_t>(),
               g["tflops"].get<double>());
  }
  for (const auto& a : profile["lightning_attention"]) {
    fmt::print("  lightning dk {:>4}: forward {:.3f} ms, backward {:.3f} ms\n", a["dk"].get<int64_t>(),
               a["forward_seconds"].get<double>() * 1e3, a["backward_seconds"].get<double>() * 1e3);
  }
  fmt::print("  memory copy {:.1f} GB/s, elementwise product {:.1f} GB/s\n", profile["memory"]["gbps"].get<double>(),
             profile["elementwise"]["gbps"].get<double>());
  for (const auto& c : profile["collectives"]) {
    fmt::print("  {:<14} {} ranks {:>10} B  busbw {:8.2f} GB/s\n", c["kind"].get<std::string>(),
               c["ranks"].get<int>(), c["bytes"].get<int64_t>(), c["busbw_gbps"].get<double>());
  }
  if (profile.contains("overlap")) {
    fmt::print("  overlap: GEMMs {:.1f}% slower beside all-reduces, all-reduces {:.1f}% slower\n",
               profile["overlap"]["compute_slowdown"].get<double>() * 100,
               profile["overlap"]["comm_slowdown"].get<double>() * 100);
  }
  return 0;
}

}  // namespace linpar::cli
