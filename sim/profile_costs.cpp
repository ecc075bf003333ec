#include "sim/profile_costs.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/error.h"

namespace linpar::sim {

namespace {

using nlohmann::json;

const std::vector<std::string> kGemmLayers = {"qkvu_proj", "out_proj", "channel_mixer.l1",
                                              "channel_mixer.l3", "lm_head"};
const std::vector<std::string> kGemmPasses = {"forward", "backward_input", "backward_weight"};
constexpr CollectiveKind kCollectiveKindList[] = {
    CollectiveKind::AllReduce, CollectiveKind::AllGather, CollectiveKind::ReduceScatter,
    CollectiveKind::Broadcast, CollectiveKind::AllToAll,  CollectiveKind::SendRecv};

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// Reads the fields of one linpar-profile-1 document. Every problem is one
// UserError line: "profile PATH: FIELD: PROBLEM", FIELD as in the file
// ("gemm[2].tflops").
class ProfileReader {
 public:
  explicit ProfileReader(const std::string& path) : path_(path) {}

  template <typename... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    user_error("profile {}: {}", path_, fmt::format(format, std::forward<Args>(args)...));
  }

  const json& at(const json& object, const std::string& where, const char* key) const {
    const auto it = object.find(key);
    if (it == object.end()) fail("missing key {}", name(where, key));
    return *it;
  }
  std::string text(const json& object, const std::string& where, const char* key) const {
    const json& value = at(object, where, key);
    if (!value.is_string()) fail("{}: expected a string, got {}", name(where, key), value.dump());
    return value.get<std::string>();
  }
  double positive(const json& object, const std::string& where, const char* key) const {
    const json& value = at(object, where, key);
    if (!value.is_number()) fail("{}: expected a number, got {}", name(where, key), value.dump());
    const double x = value.get<double>();
    if (!(x > 0) || !std::isfinite(x))
      fail("{} = {}: must be positive", name(where, key), value.dump());
    return x;
  }
  double non_negative(const json& object, const std::string& where, const char* key) const {
    const json& value = at(object, where, key);
    if (!value.is_number()) fail("{}: expected a number, got {}", name(where, key), value.dump());
    const double x = value.get<double>();
    if (!(x >= 0) || !std::isfinite(x))
      fail("{} = {}: must be zero or positive", name(where, key), value.dump());
    return x;
  }
  int64_t count(const json& object, const std::string& where, const char* key) const {
    const json& value = at(object, where, key);
    if (!value.is_number_integer()) {
      fail("{}: expected a whole number, got {}", name(where, key), value.dump());
    }
    if (value.is_number_unsigned()) {
      if (value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        fail("{} = {}: too large", name(where, key), value.dump());
      }
      if (value.get<uint64_t>() == 0) fail("{} = 0: must be positive", name(where, key));
      return static_cast<int64_t>(value.get<uint64_t>());
    }
    const int64_t x = value.get<int64_t>();
    if (x <= 0) fail("{} = {}: must be positive", name(where, key), x);
    return x;
  }
  const json& array(const json& object, const char* key) const {
    const json& value = at(object, "", key);
    if (!value.is_array()) fail("{}: expected an array, got {}", key, value.dump());
    return value;
  }
  // An entry of an array must be an object.
  void expect_object(const json& value, const std::string& where) const {
    if (!value.is_object()) fail("{}: expected an object, got {}", where, value.dump());
  }

 private:
  static std::string name(const std::string& where, const char* key) {
    return where.empty() ? std::string(key) : where + "." + key;
  }
  std::string path_;
};

std::string one_of(const ProfileReader& r, const json& object, const std::string& where,
                   const char* key, const std::vector<std::string>& known) {
  const std::string value = r.text(object, where, key);
  if (std::find(known.begin(), known.end(), value) == known.end()) {
    r.fail("{}.{} \"{}\": unknown (known: {})", where, key, value, joined(known));
  }
  return value;
}

MeasuredGemm read_gemm(const ProfileReader& r, const json& entry, const std::string& where) {
  r.expect_object(entry, where);
  MeasuredGemm g;
  g.layer = one_of(r, entry, where, "layer", kGemmLayers);
  g.pass = one_of(r, entry, where, "pass", kGemmPasses);
  g.m = r.count(entry, where, "m");
  g.n = r.count(entry, where, "n");
  g.k = r.count(entry, where, "k");
  r.text(entry, where, "dtype");
  g.seconds = r.positive(entry, where, "seconds");
  g.tflops = r.positive(entry, where, "tflops");
  return g;
}

MeasuredAttention read_attention(const ProfileReader& r, const json& entry,
                                 const std::string& where) {
  r.expect_object(entry, where);
  MeasuredAttention a;
  a.batch = r.count(entry, where, "batch");
  a.heads = r.count(entry, where, "heads");
  a.length = r.count(entry, where, "length");
  a.dk = r.count(entry, where, "dk");
  a.dv = r.count(entry, where, "dv");
  a.block = r.count(entry, where, "block");
  r.text(entry, where, "dtype");
  a.forward_seconds = r.positive(entry, where, "forward_seconds");
  a.backward_seconds = r.positive(entry, where, "backward_seconds");
  a.forward_tflops = r.positive(entry, where, "forward_tflops");
  a.backward_tflops = r.positive(entry, where, "backward_tflops");
  return a;
}

MeasuredCollective read_collective(const ProfileReader& r, const json& entry,
                                   const std::string& where) {
  r.expect_object(entry, where);
  std::vector<std::string> kinds;
  for (CollectiveKind kind : kCollectiveKindList) kinds.push_back(collective_name(kind));
  const std::string kind = one_of(r, entry, where, "kind", kinds);
  MeasuredCollective c;
  for (CollectiveKind k : kCollectiveKindList) {
    if (kind == collective_name(k)) c.kind = k;
  }
  const int64_t ranks = r.count(entry, where, "ranks");
  if (ranks < 2) r.fail("{}.ranks = {}: must be at least 2", where, ranks);
  c.ranks = static_cast<int>(ranks);
  c.bytes = r.count(entry, where, "bytes");
  c.seconds = r.positive(entry, where, "seconds");
  r.positive(entry, where, "algbw_gbps");
  c.busbw_gbps = r.positive(entry, where, "busbw_gbps");
  return c;
}

// nccl-tests' bus-bandwidth factor (doc/PERFORMANCE.md there): busbw = algbw · factor.
double busbw_factor(CollectiveKind kind, int ranks) {
  const double n = ranks;
  switch (kind) {
    case CollectiveKind::AllReduce:
      return 2 * (n - 1) / n;
    case CollectiveKind::AllGather:
    case CollectiveKind::ReduceScatter:
    case CollectiveKind::AllToAll:
      return (n - 1) / n;
    case CollectiveKind::Broadcast:
    case CollectiveKind::SendRecv:
      return 1.0;
  }
  return 1.0;
}

// The profiled layer of a product (`linpar profile`'s names); l2 has l1's
// shape [F, D]. "": none.
const char* gemm_layer_of(ProductWeight weight) {
  switch (weight) {
    case ProductWeight::QkvuProj:
      return "qkvu_proj";
    case ProductWeight::OutProj:
      return "out_proj";
    case ProductWeight::GluIn:
      return "channel_mixer.l1";
    case ProductWeight::GluOut:
      return "channel_mixer.l3";
    case ProductWeight::LmHead:
      return "lm_head";
    case ProductWeight::Other:
      return "";
  }
  return "";
}

// A rate (FLOP/s) at `flops` from measurements (FLOPs, rate) of one kernel
// at several sizes: interpolated linearly in log(FLOPs), held at the nearest
// measured size outside them. Empty: 0.
double rate_at(std::vector<std::pair<double, double>> points, double flops) {
  if (points.empty()) return 0;
  std::sort(points.begin(), points.end());
  if (flops <= points.front().first) return points.front().second;
  if (flops >= points.back().first) return points.back().second;
  size_t hi = 1;
  while (points[hi].first < flops) ++hi;
  const auto [xa, ya] = points[hi - 1];
  const auto [xb, yb] = points[hi];
  const double w = std::log(flops / xa) / std::log(xb / xa);
  return ya + w * (yb - ya);
}

// The measured rate (TFLOP/s) of one layer's product in one pass at an op of
// `flops` (one product's FLOPs); 0 when the profile lacks the layer or pass.
double gemm_tflops(const MeasuredProfile& p, const std::string& layer, const char* pass, double flops) {
  std::vector<std::pair<double, double>> points;
  for (const MeasuredGemm& g : p.gemms) {
    if (g.layer == layer && g.pass == pass) {
      points.push_back({2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k),
                        g.tflops});
    }
  }
  return rate_at(std::move(points), flops);
}

// The measured lightning-attention rate (TFLOP/s) of the op's key width at
// its FLOPs; 0 when the profile lacks that width (or, with key_dim 0, has
// several).
double attention_tflops(const MeasuredProfile& p, int64_t key_dim, bool forward, double flops) {
  if (key_dim <= 0) {
    for (const MeasuredAttention& a : p.attention) {
      if (a.dk != p.attention.front().dk) return 0;
    }
    if (p.attention.empty()) return 0;
    key_dim = p.attention.front().dk;
  }
  std::vector<std::pair<double, double>> points;
  for (const MeasuredAttention& a : p.attention) {
    if (a.dk != key_dim) continue;
    const double tflops = forward ? a.forward_tflops : a.backward_tflops;
    const double seconds = forward ? a.forward_seconds : a.backward_seconds;
    points.push_back({tflops * 1e12 * seconds, tflops});
  }
  return rate_at(std::move(points), flops);
}

}  // namespace

MeasuredProfile load_profile(const std::string& path) {
  const ProfileReader r(path);
  if (!std::filesystem::exists(path)) r.fail("no such file");
  std::ifstream in(path);
  if (!in) r.fail("cannot open the file");
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::exception& e) {
    r.fail("not valid JSON: {}", e.what());
  }
  if (!doc.is_object()) r.fail("expected a JSON object, got {}", doc.type_name());
  const std::string format = r.text(doc, "", "format");
  if (format != "linpar-profile-1") r.fail("format \"{}\": expected \"linpar-profile-1\"", format);

  MeasuredProfile p;
  p.path = path;
  p.device = r.text(doc, "", "device");
  p.ranks = static_cast<int>(r.count(doc, "", "ranks"));
  p.model = r.text(doc, "", "model");
  p.seq_len = r.count(doc, "", "seq_len");
  p.micro_batch = r.count(doc, "", "micro_batch");
  p.tp = static_cast<int>(r.count(doc, "", "tp"));

  const json& gemms = r.array(doc, "gemm");
  for (size_t i = 0; i < gemms.size(); ++i) {
    const std::string where = fmt::format("gemm[{}]", i);
    MeasuredGemm g = read_gemm(r, gemms[i], where);
    for (const MeasuredGemm& h : p.gemms) {
      if (h.layer == g.layer && h.pass == g.pass && h.m == g.m && h.n == g.n && h.k == g.k) {
        r.fail("{}: a second entry for {} {} at {} x {} x {}", where, g.layer, g.pass, g.m, g.n, g.k);
      }
    }
    p.gemms.push_back(std::move(g));
  }
  const json& attention = r.array(doc, "lightning_attention");
  for (size_t i = 0; i < attention.size(); ++i) {
    const std::string where = fmt::format("lightning_attention[{}]", i);
    const MeasuredAttention a = read_attention(r, attention[i], where);
    for (const MeasuredAttention& b : p.attention) {
      if (b.dk == a.dk && b.batch == a.batch && b.length == a.length && b.heads == a.heads) {
        r.fail("{}: a second entry for dk {} at batch {}, {} heads, length {}", where, a.dk, a.batch,
               a.heads, a.length);
      }
    }
    p.attention.push_back(a);
  }
  const json& memory = r.at(doc, "", "memory");
  if (!memory.is_object()) r.fail("memory: expected an object, got {}", memory.dump());
  r.count(memory, "memory", "copy_bytes");
  r.positive(memory, "memory", "seconds");
  p.copy_gbps = r.positive(memory, "memory", "gbps");
  // Optional (profiles written before it lack it): the measured rate of an
  // elementwise kernel, which memory-bound ops run at instead of the copy's.
  if (doc.contains("elementwise")) {
    const json& e = doc["elementwise"];
    if (!e.is_object()) r.fail("elementwise: expected an object, got {}", e.dump());
    r.positive(e, "elementwise", "seconds");
    p.elementwise_gbps = r.positive(e, "elementwise", "gbps");
  }

  // Optional (from 2 ranks up; older files lack it): how a GEMM and an
  // all-reduce slow each other when they run at once.
  if (doc.contains("overlap")) {
    const json& o = doc["overlap"];
    if (!o.is_object()) r.fail("overlap: expected an object, got {}", o.dump());
    p.overlap_compute_slowdown = r.non_negative(o, "overlap", "compute_slowdown");
    p.overlap_comm_slowdown = r.non_negative(o, "overlap", "comm_slowdown");
    p.has_overlap = true;
  }

  const json& collectives = r.array(doc, "collectives");
  for (size_t i = 0; i < collectives.size(); ++i) {
    const std::string where = fmt::format("collectives[{}]", i);
    const MeasuredCollective c = read_collective(r, collectives[i], where);
    for (const MeasuredCollective& d : p.collectives) {
      if (d.kind == c.kind && d.ranks == c.ranks && d.bytes == c.bytes) {
        r.fail("{}: a second entry for {} over {} ranks at {} bytes", where,
               collective_name(c.kind), c.ranks, c.bytes);
      }
    }
    p.collectives.push_back(c);
  }
  std::sort(p.collectives.begin(), p.collectives.end(),
            [](const MeasuredCollective& a, const MeasuredCollective& b) {
              return std::tuple(static_cast<int>(a.kind), a.ranks, a.bytes) <
                     std::tuple(static_cast<int>(b.kind), b.ranks, b.bytes);
            });
  return p;
}

const char* cost_source_name(CostSource source) {
  switch (source) {
    case CostSource::MeasuredGemm:
      return "measured gemm";
    case CostSource::MeasuredAttention:
      return "measured attention";
    case CostSource::MeasuredCopy:
      return "measured copy";
    case CostSource::Roofline:
      return "roofline";
  }
  return "?";
}

ProfiledOp profile_op_cost(const PlannedOp& op, const MeasuredProfile& p, const GpuSpec& gpu,
                           const Efficiency& fallback) {
  const double flops = static_cast<double>(op.flops);
  const double bytes = static_cast<double>(op.bytes_read + op.bytes_written);
  // Bytes at the measured elementwise rate, else the copy's (both count
  // reads and writes, as op bytes do).
  const double measured_gbps = p.elementwise_gbps > 0 ? p.elementwise_gbps : p.copy_gbps;
  const double memory_s = measured_gbps > 0 ? bytes / (measured_gbps * 1e9)
                                            : bytes / (gpu.hbm_gbps * 1e9 * fallback.memory);
  const bool forward = runs_forward_kernels(op.pass);
  auto roofline = [&] { return ProfiledOp{op_seconds(op, gpu, fallback), CostSource::Roofline}; };
  switch (op.kind) {
    case OpKind::Matmul: {
      const std::string layer = gemm_layer_of(op.matmul.weight);
      double compute_s = 0;
      if (forward) {
        const double rate = gemm_tflops(p, layer, "forward", flops);
        if (!(rate > 0)) return roofline();
        compute_s = flops / (rate * 1e12);
      } else {
        // The plan counts 2·(2mnk): dx = dy·W and dW += dyᵀ·x, equal halves.
        const double input = gemm_tflops(p, layer, "backward_input", flops / 2);
        const double weight = gemm_tflops(p, layer, "backward_weight", flops / 2);
        if (!(input > 0) || !(weight > 0)) return roofline();
        compute_s = flops / 2 / (input * 1e12) + flops / 2 / (weight * 1e12);
      }
      return {std::max(compute_s, memory_s), CostSource::MeasuredGemm};
    }
    case OpKind::Attention: {
      // Every attention-class op (the LASP inter-chunk and state ops too)
      // runs at the lightning kernel's rate of its key width, as the
      // roofline's one attention efficiency does; FLOP-less ones (state
      // sends) cost their bytes.
      const double tflops = attention_tflops(p, op.core.head_dim, forward, flops);
      if (!(tflops > 0)) return roofline();
      return {std::max(flops / (tflops * 1e12), memory_s), CostSource::MeasuredAttention};
    }
    case OpKind::Memory:
      if (!(measured_gbps > 0)) return roofline();
      return {memory_s, CostSource::MeasuredCopy};
    case OpKind::SoftmaxAttention:  // not measured by linpar profile: its curve (sim/op_costs.h)
      return roofline();
  }
  return roofline();
}

double profile_op_seconds(const PlannedOp& op, const MeasuredProfile& p, const GpuSpec& gpu,
                          const Efficiency& fallback) {
  return profile_op_cost(op, p, gpu, fallback).seconds;
}

std::optional<double> profile_collective_seconds(CollectiveKind kind, int64_t payload_bytes,
                                                 int ranks, const MeasuredProfile& p) {
  if (ranks <= 1 && kind != CollectiveKind::SendRecv) return 0.0;
  // The measured sizes of this kind at this group size, in increasing bytes.
  std::vector<const MeasuredCollective*> sizes;
  for (const MeasuredCollective& c : p.collectives) {
    if (c.kind == kind && c.ranks == ranks) sizes.push_back(&c);
  }
  std::sort(
      sizes.begin(), sizes.end(),
      [](const MeasuredCollective* a, const MeasuredCollective* b) { return a->bytes < b->bytes; });
  if (sizes.empty()) return std::nullopt;
  if (payload_bytes <= 0) return 0.0;
  const double bytes = static_cast<double>(payload_bytes);
  double busbw = 0;
  if (payload_bytes <= sizes.front()->bytes) {
    // Below the smallest measured size a collective costs its latency: no
    // less than the smallest measurement (holding its bandwidth instead made
    // an 8-byte norm all-reduce nearly free, while NCCL takes microseconds).
    return sizes.front()->seconds;
  } else if (payload_bytes >= sizes.back()->bytes) {
    busbw = sizes.back()->busbw_gbps;
  } else {
    size_t hi = 1;
    while (sizes[hi]->bytes < payload_bytes) ++hi;
    const MeasuredCollective& a = *sizes[hi - 1];
    const MeasuredCollective& b = *sizes[hi];
    const double w = std::log(bytes / static_cast<double>(a.bytes)) /
                     std::log(static_cast<double>(b.bytes) / static_cast<double>(a.bytes));
    busbw = a.busbw_gbps + w * (b.busbw_gbps - a.busbw_gbps);
  }
  // algbw = busbw / factor, time = bytes / algbw.
  return bytes * busbw_factor(kind, ranks) / (busbw * 1e9);
}

}  // namespace linpar::sim
