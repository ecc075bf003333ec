#include "sim/hardware_config.h"

#include <fmt/format.h>

#include <charconv>
#include <climits>
#include <cmath>
#include <fstream>
#include <map>
#include <string_view>
#include <variant>

#include "core/error.h"

namespace linpar::sim {

namespace {

// Fraction: 0 < x <= 1 (an efficiency is a share of a peak).
enum class Rule { Text, Positive, NonNegative, Count, Fraction };
using Target = std::variant<std::string*, double*, int*>;

// What the fields are written into: the cluster and the roofline's
// efficiencies, changed together or not at all.
struct Values {
  ClusterSpec cluster;
  Efficiency efficiency;
};

struct Field {
  const char* section;
  const char* key;
  Rule rule;
  Target (*target)(Values&);
};

// The one table both the INI file and --hw go through.
const Field kFields[] = {
    {"gpu", "name", Rule::Text, [](Values& v) -> Target { return &v.cluster.gpu.name; }},
    {"gpu", "bf16_tflops", Rule::Positive,
     [](Values& v) -> Target { return &v.cluster.gpu.bf16_tflops; }},
    {"gpu", "f32_tflops", Rule::Positive,
     [](Values& v) -> Target { return &v.cluster.gpu.f32_tflops; }},
    {"gpu", "hbm_gib", Rule::Positive, [](Values& v) -> Target { return &v.cluster.gpu.hbm_gib; }},
    {"gpu", "hbm_gbps", Rule::Positive, [](Values& v) -> Target { return &v.cluster.gpu.hbm_gbps; }},
    {"gpu", "overlap_compute_slowdown", Rule::NonNegative,
     [](Values& v) -> Target { return &v.cluster.gpu.overlap_compute_slowdown; }},
    {"gpu", "overlap_comm_slowdown", Rule::NonNegative,
     [](Values& v) -> Target { return &v.cluster.gpu.overlap_comm_slowdown; }},
    {"intra", "name", Rule::Text, [](Values& v) -> Target { return &v.cluster.intra.name; }},
    {"intra", "gbps", Rule::Positive, [](Values& v) -> Target { return &v.cluster.intra.gbps; }},
    {"intra", "latency_us", Rule::NonNegative,
     [](Values& v) -> Target { return &v.cluster.intra.latency_us; }},
    {"inter", "name", Rule::Text, [](Values& v) -> Target { return &v.cluster.inter.name; }},
    {"inter", "gbps", Rule::Positive, [](Values& v) -> Target { return &v.cluster.inter.gbps; }},
    {"inter", "latency_us", Rule::NonNegative,
     [](Values& v) -> Target { return &v.cluster.inter.latency_us; }},
    {"cluster", "gpus_per_node", Rule::Count,
     [](Values& v) -> Target { return &v.cluster.gpus_per_node; }},
    {"cluster", "nodes", Rule::Count, [](Values& v) -> Target { return &v.cluster.nodes; }},
    {"cluster", "nics_per_node", Rule::Count,
     [](Values& v) -> Target { return &v.cluster.nics_per_node; }},
    // The roofline's efficiencies (sim/op_costs.h; ignored where a --profile
    // measured the op).
    {"efficiency", "matmul", Rule::Fraction, [](Values& v) -> Target { return &v.efficiency.matmul; }},
    {"efficiency", "matmul_overhead_us", Rule::NonNegative,
     [](Values& v) -> Target { return &v.efficiency.matmul_overhead_us; }},
    {"efficiency", "attention", Rule::Fraction, [](Values& v) -> Target { return &v.efficiency.attention; }},
    {"efficiency", "softmax_attention", Rule::Fraction,
     [](Values& v) -> Target { return &v.efficiency.softmax_attention; }},
    {"efficiency", "softmax_attention_half_length", Rule::NonNegative,
     [](Values& v) -> Target { return &v.efficiency.softmax_attention_half_length; }},
    {"efficiency", "softmax_attention_forward_us", Rule::NonNegative,
     [](Values& v) -> Target { return &v.efficiency.softmax_attention_forward_us; }},
    {"efficiency", "softmax_attention_backward_us", Rule::NonNegative,
     [](Values& v) -> Target { return &v.efficiency.softmax_attention_backward_us; }},
    {"efficiency", "softmax_attention_dropout_forward_ops", Rule::NonNegative,
     [](Values& v) -> Target { return &v.efficiency.softmax_attention_dropout_forward_ops; }},
    {"efficiency", "softmax_attention_dropout_backward_ops", Rule::NonNegative,
     [](Values& v) -> Target { return &v.efficiency.softmax_attention_dropout_backward_ops; }},
    {"efficiency", "memory", Rule::Fraction, [](Values& v) -> Target { return &v.efficiency.memory; }},
    {"efficiency", "elementwise", Rule::Fraction,
     [](Values& v) -> Target { return &v.efficiency.elementwise; }},
};

std::string known_sections() {
  std::string out;
  for (const Field& f : kFields) {
    const std::string name = fmt::format("[{}]", f.section);
    if (out.find(name) == std::string::npos) out += (out.empty() ? "" : ", ") + name;
  }
  return out;
}

std::string known_keys(const std::string& section) {
  std::string out;
  for (const Field& f : kFields) {
    if (section == f.section) out += (out.empty() ? "" : ", ") + std::string(f.key);
  }
  return out;
}

std::string trimmed(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1);
}

void check_section(const std::string& section, const std::string& where) {
  if (known_keys(section).empty()) {
    user_error("{}: unknown section [{}] (known: {})", where, section, known_sections());
  }
}

// Sets one field; `where` names the file and line or the argument, the key and
// the value for the messages ("hw.ini:3: [gpu] bf16_tflops = fast").
void set_field(Values& values, const std::string& section, const std::string& key,
               const std::string& value, const std::string& where) {
  check_section(section, where);
  const Field* field = nullptr;
  for (const Field& f : kFields) {
    if (section == f.section && key == f.key) field = &f;
  }
  if (field == nullptr) {
    user_error("{}: unknown key {} in [{}] (known: {})", where, key, section, known_keys(section));
  }
  if (value.empty()) user_error("{}: no value", where);
  const char* first = value.data();
  const char* last = value.data() + value.size();
  switch (field->rule) {
    case Rule::Text:
      *std::get<std::string*>(field->target(values)) = value;
      return;
    case Rule::Positive:
    case Rule::NonNegative:
    case Rule::Fraction: {
      double x = 0;
      const auto [end, error] = std::from_chars(first, last, x);
      if (error != std::errc() || end != last || !std::isfinite(x)) {
        user_error("{}: not a number", where);
      }
      if (field->rule == Rule::Positive && !(x > 0)) user_error("{}: must be positive", where);
      if (field->rule == Rule::NonNegative && x < 0) user_error("{}: must be >= 0", where);
      if (field->rule == Rule::Fraction && !(x > 0 && x <= 1)) {
        user_error("{}: a share of the peak, must be > 0 and <= 1", where);
      }
      *std::get<double*>(field->target(values)) = x;
      return;
    }
    case Rule::Count: {
      long long n = 0;
      const auto [end, error] = std::from_chars(first, last, n);
      if (error != std::errc() || end != last) user_error("{}: not a whole number", where);
      if (n <= 0) user_error("{}: must be positive", where);
      if (n > INT_MAX) user_error("{}: too large", where);
      *std::get<int*>(field->target(values)) = static_cast<int>(n);
      return;
    }
  }
}

// validate()'s message, prefixed with where the values came from.
void validate_from(const ClusterSpec& cluster, const std::string& origin) {
  try {
    validate(cluster);
  } catch (const UserError& e) {
    user_error("{}: {}", origin, e.what());
  }
}

}  // namespace

// A reader of its own rather than Boost.PropertyTree's: PropertyTree drops an
// empty section (so `[nvme]` would pass silently) and reports no line for a
// bad value; the format is a dozen lines to read.
void apply_hardware_ini(const std::string& path, ClusterSpec& cluster, Efficiency& efficiency) {
  std::ifstream in(path);
  if (!in) user_error("{}: cannot open the hardware file", path);
  Values updated{cluster, efficiency};  // the caller's values change only if every value is good
  std::string section;
  std::map<std::string, int> first_line;  // "section.key" -> the line that set it
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    // '#' or ';' starts a comment, anywhere on the line (no name or value holds one).
    text = trimmed(text.substr(0, text.find_first_of("#;")));
    const std::string at = fmt::format("{}:{}", path, line);
    if (text.empty()) continue;
    if (text.front() == '[') {
      if (text.back() != ']') user_error("{}: {}: expected [section]", at, text);
      section = trimmed(text.substr(1, text.size() - 2));
      check_section(section, at);
      continue;
    }
    const size_t equals = text.find('=');
    if (equals == std::string::npos)
      user_error("{}: {}: expected key = value or [section]", at, text);
    const std::string key = trimmed(text.substr(0, equals)),
                      value = trimmed(text.substr(equals + 1));
    if (section.empty()) {
      user_error("{}: {} = {}: outside a section (known: {})", at, key, value, known_sections());
    }
    const std::string where = fmt::format("{}: [{}] {} = {}", at, section, key, value);
    const auto [seen, fresh] = first_line.emplace(section + "." + key, line);
    if (!fresh) user_error("{}: already set on line {}", where, seen->second);
    set_field(updated, section, key, value, where);
  }
  validate_from(updated.cluster, path);
  cluster = updated.cluster;
  efficiency = updated.efficiency;
}

void apply_hardware_override(const std::string& assignment, ClusterSpec& cluster, Efficiency& efficiency) {
  const std::string where = "--hw " + assignment;
  const size_t equals = assignment.find('=');
  const size_t dot = assignment.find('.');
  if (equals == std::string::npos || dot == std::string::npos || dot > equals) {
    user_error("{}: expected section.key=value (e.g. gpu.bf16_tflops=700)", where);
  }
  Values updated{cluster, efficiency};
  set_field(updated, trimmed(assignment.substr(0, dot)),
            trimmed(assignment.substr(dot + 1, equals - dot - 1)),
            trimmed(assignment.substr(equals + 1)), where);
  validate_from(updated.cluster, where);
  cluster = updated.cluster;
  efficiency = updated.efficiency;
}

std::vector<std::pair<std::string, double>> efficiency_values(const Efficiency& efficiency) {
  Values values{ClusterSpec{}, efficiency};
  std::vector<std::pair<std::string, double>> out;
  for (const Field& f : kFields) {
    if (std::string_view(f.section) == "efficiency") out.emplace_back(f.key, *std::get<double*>(f.target(values)));
  }
  return out;
}

std::vector<std::string> hardware_field_names() {
  std::vector<std::string> names;
  for (const Field& f : kFields) names.push_back(fmt::format("{}.{}", f.section, f.key));
  return names;
}

}  // namespace linpar::sim
