// linpar train: options -> TrainOptions -> Trainer (or the --dry-run report).
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "co2/outer_loop.h"
#include "core/error.h"
#include "lasp/factory.h"
#include "model/pipeline_schedule.h"
#include "model/transnormer.h"
#include "parallel/trainer.h"
#include "sim/step.h"

namespace linpar::cli {

namespace fs = std::filesystem;

namespace {

constexpr const char* kDefaultCorpusDir = "data/kjv";

// --data default|DIR|FILE: a directory holds train.bin (+ val.bin); a file is
// the training token file, with --val-data for validation.
void resolve_data(const po::variables_map& v, TrainOptions& o) {
  std::string data = v["data"].as<std::string>();
  const bool is_default = data == "default";
  if (is_default) data = kDefaultCorpusDir;
  if (fs::is_directory(data)) {
    o.train_path = (fs::path(data) / "train.bin").string();
    if (fs::exists(fs::path(data) / "val.bin")) o.val_path = (fs::path(data) / "val.bin").string();
    std::ifstream corpus(fs::path(data) / "corpus.json");
    if (corpus) {
      nlohmann::json info = nlohmann::json::parse(corpus, nullptr, false);
      if (info.is_object() && info.contains("val_tokens") && info.contains("val_bytes") &&
          info["val_bytes"].get<double>() > 0) {
        o.val_tokens_per_byte = info["val_tokens"].get<double>() / info["val_bytes"].get<double>();
      }
    }
  } else {
    o.train_path = data;
  }
  if (v.count("val-data")) o.val_path = v["val-data"].as<std::string>();
  if (!fs::exists(o.train_path)) {
    if (is_default) {
      user_error(
          "--data default: {} is missing; prepare the default corpus with "
          "scripts/prepare_corpus.sh",
          o.train_path);
    }
    user_error("--data {}: no such token file or directory with train.bin",
               v["data"].as<std::string>());
  }
}

// The layout as the simulator describes it: `linpar sim` with the same
// flags prices and sizes exactly this.
sim::SimLayout simulated_layout(const TrainOptions& o) {
  sim::SimLayout l;
  static_cast<Layout&>(l) = o.layout;
  l.element_bytes = static_cast<int64_t>(dtype_size(o.dtype));
  return l;
}

// The memory per GPU is the simulator's model (sim/memory.h: what the
// runtime allocates, term by term), for the busiest pipeline stage: the
// numbers `linpar sim` prints for the same layout.
void print_dry_run(const TrainOptions& o) {
  const ModelConfig& m = o.model;
  const int64_t params = m.parameter_count();
  const bool gpu = o.device == Device::CUDA;
  const sim::MemoryBreakdown memory = sim::layout_memory(sim::SimModel(m), simulated_layout(o));
  fmt::print("model: {} (layers {}, width {}, heads {}, glu_dim {}, vocab {}, lrpe {})\n", m.name,
             m.n_layers, m.width, m.n_heads, m.glu_dim, m.vocab_size,
             m.lrpe == LrpeLayers::None ? "none" : (m.lrpe == LrpeLayers::First ? "first" : "all"));
  fmt::print("parameters: {}\n", params);
  fmt::print("layout: {} ({} ranks{}{}{}); {} micro-batches of {} x {} tokens per step per rank\n",
             degrees(o.layout).describe(), o.layout.world(),
             o.layout.zero ? fmt::format(", ZeRO-{}", o.layout.zero) : std::string(),
             o.layout.sp > 1 ? fmt::format(", sp-kind {}", sp_kind_name(o.layout.sp_kind)) : "",
             o.layout.recompute != Recompute::None
                 ? fmt::format(", recompute {}", recompute_name(o.layout.recompute))
                 : "",
             o.layout.global_batch / o.layout.dp / o.layout.micro_batch, o.layout.micro_batch,
             o.layout.seq_len / o.layout.sp);
  fmt::print("memory per {} {:10.2f} GiB  (busiest stage, {} compute; the simulator's model)\n",
             gpu ? "GPU" : "rank", static_cast<double>(memory.total) / (1 << 30),
             dtype_name(o.dtype));
  fmt::print("    {}\n", sim::memory_summary(memory));
}

}  // namespace

int train_command(const std::vector<std::string>& args) {
  po::options_description options("train options");
  add_model_options(options);
  options.add_options()(
      "data", po::value<std::string>()->default_value("default"),
      "default (the KJV corpus in data/kjv), a directory with train.bin/val.bin, or a token file")(
      "val-data", po::value<std::string>(), "validation token file (overrides DIR/val.bin)")(
      "steps", po::value<int64_t>()->default_value(300), "optimizer steps")(
      "seq-len", po::value<int64_t>()->default_value(128), "tokens per sample")(
      "micro-batch", po::value<int64_t>()->default_value(8), "samples per forward/backward")(
      "global-batch", po::value<int64_t>()->default_value(16), "samples per optimizer step")(
      "lr", po::value<double>()->default_value(2e-3), "peak learning rate")(
      "min-lr-ratio", po::value<double>()->default_value(0.1),
      "cosine floor as a fraction of --lr")("warmup", po::value<int64_t>()->default_value(20),
                                            "linear warmup steps")(
      "weight-decay", po::value<double>()->default_value(0.1), "AdamW decoupled weight decay")(
      "beta1", po::value<double>()->default_value(0.9), "AdamW beta1")(
      "beta2", po::value<double>()->default_value(0.95), "AdamW beta2")(
      "grad-clip", po::value<double>()->default_value(1.0),
      "clip the global gradient norm (0: off)")("seed", po::value<uint64_t>()->default_value(1234),
                                                "seed for initialisation and data order")(
      "eval-every", po::value<int64_t>()->default_value(50),
      "validate every N steps (0: at the end only)")("eval-windows",
                                                     po::value<int64_t>()->default_value(32),
                                                     "validation windows of --seq-len tokens")(
      "ckpt-dir", po::value<std::string>(), "checkpoint directory")(
      "ckpt-every", po::value<int64_t>()->default_value(0), "checkpoint every N steps (0: never)")(
      "resume", po::bool_switch(), "continue from the newest checkpoint in --ckpt-dir")(
      "init-from", po::value<std::string>(),
      "start from the weights of this checkpoint (optimizer and step start fresh)")(
      "exit-after", po::value<int64_t>()->default_value(0),
      "stop (and checkpoint, with --ckpt-dir) after N steps of this invocation")(
      "metrics", po::value<std::string>(), "write one JSON object per step to this file")(
      "device", po::value<std::string>()->default_value("cpu"),
      "cpu, or cuda (one GPU per rank; f32 master weights and AdamW state)")(
      "dtype", po::value<std::string>(),
      "compute precision: f32 or f64 on the CPU (default f32); bf16 or f32 on the GPU (default bf16)")(
      "progress", po::value<std::string>()->default_value("auto"), "auto|bar|lines|quiet")(
      "dry-run", po::bool_switch(),
      "validate, print the parameter count and memory estimate, exit");
  // clang-format off
  options.add_options()
      ("dp", po::value<int>()->default_value(1), "data-parallel degree")
      ("tp", po::value<int>()->default_value(1), "tensor-parallel degree (Megatron-style; divides heads, glu-dim, vocab)")
      ("tp-sp", po::bool_switch(), "Megatron sequence parallelism inside the TP group (sequence-sharded norms and residuals)")
      ("pp", po::value<int>()->default_value(1), "pipeline-parallel degree (contiguous layer stages)")
      ("pp-schedule", po::value<std::string>()->default_value("1f1b"), "pipeline schedule: gpipe|1f1b")
      ("pp-chunks", po::value<int>()->default_value(1), "model chunks per stage: > 1 is interleaved 1F1B (Megatron's virtual pipeline; micro-batches a multiple of pp)")
      ("sp", po::value<int>()->default_value(1), "sequence-parallel degree (the sequence is split into sp chunks)")
      ("sp-kind", po::value<std::string>()->default_value("lasp"), "sequence parallelism: lasp|lasp2|allgather|ulysses")
      ("zero", po::value<int>()->default_value(0), "ZeRO stage over the DP group: 1 shards the optimizer state, 2 also the gradients, 3 also the parameters")
      ("recompute", po::value<std::string>()->default_value("none"), "activation recomputation: none|selective (the attention core)|full (each layer from its input)")
      ("optimizer", po::value<std::string>()->default_value("adamw"), "inner optimizer: adamw|sgd (sgd: p -= lr·(g + wd·p))")
      ("co2-tau", po::value<int64_t>()->default_value(0), "CO2: inner steps per outer round (0: synchronous DP)")
      ("co2-outer-lr", po::value<double>()->default_value(1.0), "CO2 outer learning rate α")
      ("co2-outer-momentum", po::value<double>()->default_value(-1.0), "CO2 outer momentum β (<0: by DP size, fairseq-CO2's rule)")
      ("co2-gap-penalty", po::value<double>()->default_value(1.0), "CO2 staleness gap penalty Λ (the pseudo-gradient is divided by it)")
      ("co2-clip", po::value<double>()->default_value(0.0), "CO2 outer momentum clip φ (element-wise to [-φ, φ]; 0: off)")
      ("co2-sync", po::bool_switch(), "CO2 without the one-round delay (SlowMo/DiLoCo), for ablations")
      ("co2-shard-outer", po::bool_switch(), "CO2 outer state (global point, momentum) sharded over the DP group")
      ("emulate-dp-gbps", po::value<double>()->default_value(0.0), "experiments: hold DP all-reduces (DDP buckets, CO2's outer all-reduce) to this bandwidth, Gbit/s")
      ("bucket-mb", po::value<double>()->default_value(4.0), "DP gradient all-reduce bucket size, MiB");
  // clang-format on
  po::variables_map v;
  if (!parse_options("train", "[options]", args, options, v)) return 0;

  TrainOptions o;
  o.model = model_config_from(v);
  o.layout.dp = v["dp"].as<int>();
  o.layout.tp = v["tp"].as<int>();
  o.layout.pp = v["pp"].as<int>();
  o.layout.sp = v["sp"].as<int>();
  o.layout.tp_sp = v["tp-sp"].as<bool>();
  o.layout.sp_kind = parse_sp_kind(v["sp-kind"].as<std::string>());
  o.layout.schedule = pipeline_schedule_from_name(v["pp-schedule"].as<std::string>());
  o.layout.pp_chunks = v["pp-chunks"].as<int>();
  o.layout.zero = v["zero"].as<int>();
  o.layout.recompute = recompute_from_name(v["recompute"].as<std::string>());
  const std::string optimizer = v["optimizer"].as<std::string>();
  if (optimizer != "adamw" && optimizer != "sgd") user_error("--optimizer {}: expected adamw or sgd", optimizer);
  o.adamw.plain_sgd = optimizer == "sgd";
  co2::Co2Options co2_options;
  co2_options.tau = v["co2-tau"].as<int64_t>();
  co2_options.outer_lr = v["co2-outer-lr"].as<double>();
  co2_options.outer_momentum = v["co2-outer-momentum"].as<double>();
  co2_options.gap_penalty = v["co2-gap-penalty"].as<double>();
  co2_options.clip = v["co2-clip"].as<double>();
  co2_options.sync = v["co2-sync"].as<bool>();
  co2_options.shard_outer = v["co2-shard-outer"].as<bool>();
  co2_options.emulated_gbps = v["emulate-dp-gbps"].as<double>();
  o.emulated_dp_gbps = co2_options.emulated_gbps;
  co2::validate(co2_options);
  const double bucket_mb = v["bucket-mb"].as<double>();
  if (!(bucket_mb > 0)) user_error("--bucket-mb {}: must be positive", bucket_mb);
  o.bucket_bytes = static_cast<int64_t>(bucket_mb * 1024 * 1024);
  const std::string device = v["device"].as<std::string>();
  if (device != "cpu" && device != "cuda") user_error("--device {}: expected cpu or cuda", device);
  o.device = device == "cuda" ? Device::CUDA : Device::CPU;
  const std::string dtype =
      v.count("dtype") ? v["dtype"].as<std::string>() : (o.device == Device::CUDA ? "bf16" : "f32");
  if (dtype != "f32" && dtype != "f64" && dtype != "bf16") {
    user_error("--dtype {}: expected f32, f64 or bf16", dtype);
  }
  o.dtype = dtype == "f32" ? DType::F32 : dtype == "f64" ? DType::F64 : DType::BF16;
  o.layout.seq_len = v["seq-len"].as<int64_t>();
  o.layout.micro_batch = v["micro-batch"].as<int64_t>();
  o.layout.global_batch = v["global-batch"].as<int64_t>();
  o.steps = v["steps"].as<int64_t>();
  o.schedule.max_lr = v["lr"].as<double>();
  o.schedule.min_lr_ratio = v["min-lr-ratio"].as<double>();
  o.schedule.warmup_steps = v["warmup"].as<int64_t>();
  o.schedule.total_steps = o.steps;
  o.adamw.weight_decay = v["weight-decay"].as<double>();
  o.adamw.beta1 = v["beta1"].as<double>();
  o.adamw.beta2 = v["beta2"].as<double>();
  o.grad_clip = v["grad-clip"].as<double>();
  o.seed = v["seed"].as<uint64_t>();
  o.eval_every = v["eval-every"].as<int64_t>();
  o.eval_windows = v["eval-windows"].as<int64_t>();
  if (v.count("ckpt-dir")) o.ckpt_dir = v["ckpt-dir"].as<std::string>();
  o.ckpt_every = v["ckpt-every"].as<int64_t>();
  o.resume = v["resume"].as<bool>();
  o.exit_after = v["exit-after"].as<int64_t>();
  if (v.count("init-from")) o.init_from = v["init-from"].as<std::string>();
  if (v.count("metrics")) o.metrics_path = v["metrics"].as<std::string>();
  const std::string progress = v["progress"].as<std::string>();
  if (progress == "auto")
    o.progress = TrainOptions::Progress::Auto;
  else if (progress == "bar")
    o.progress = TrainOptions::Progress::Bar;
  else if (progress == "lines")
    o.progress = TrainOptions::Progress::Lines;
  else if (progress == "quiet")
    o.progress = TrainOptions::Progress::Quiet;
  else
    user_error("--progress {}: expected auto, bar, lines or quiet", progress);
  // CO2's τ in the layout too, so that the one validation (and the dry
  // run's memory) sees it; the outer loop runs it.
  o.layout.co2_tau = co2_options.tau;
  o.layout.co2_shard_outer = co2_options.shard_outer;
  validate_train_options(o);

  if (v["dry-run"].as<bool>()) {
    print_dry_run(o);
    return 0;
  }
  ProcessGrid grid(degrees(o.layout), MPI_COMM_WORLD,
                   o.device);  // refuses a world of the wrong size
  resolve_data(v, o);
  Trainer trainer(o, grid, lasp::make_sequence_attention,
                  co2_options.tau > 0 ? co2::make_outer_loop(co2_options) : OuterLoopFactory{});
  trainer.run();
  return 0;
}

}  // namespace linpar::cli
