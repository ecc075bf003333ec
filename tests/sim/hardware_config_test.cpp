// Hardware overrides from an INI file and from --hw assignments: every field
// of the table reaches the cluster or the efficiencies, and every bad input is
// one line naming the file (or argument), the key and the value, leaving both
// unchanged.
#include "sim/hardware_config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error_types.h"
#include "temp_dir.h"

namespace linpar::sim {
namespace {

std::string write_ini(const testing::TempDir& dir, const std::string& text) {
  const std::string path = dir / "hw.ini";
  std::ofstream(path) << text;
  return path;
}

// The message of the UserError `run` throws ("" if none).
template <typename F>
std::string error_of(F run) {
  try {
    run();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

bool same(const ClusterSpec& a, const ClusterSpec& b) {
  return a.gpu.name == b.gpu.name && a.gpu.bf16_tflops == b.gpu.bf16_tflops &&
         a.gpu.f32_tflops == b.gpu.f32_tflops && a.gpu.hbm_gib == b.gpu.hbm_gib &&
         a.gpu.hbm_gbps == b.gpu.hbm_gbps &&
         a.gpu.overlap_compute_slowdown == b.gpu.overlap_compute_slowdown &&
         a.gpu.overlap_comm_slowdown == b.gpu.overlap_comm_slowdown && a.intra.name == b.intra.name &&
         a.intra.gbps == b.intra.gbps && a.intra.latency_us == b.intra.latency_us &&
         a.inter.name == b.inter.name && a.inter.gbps == b.inter.gbps &&
         a.inter.latency_us == b.inter.latency_us && a.gpus_per_node == b.gpus_per_node &&
         a.nodes == b.nodes && a.nics_per_node == b.nics_per_node;
}

bool same(const Efficiency& a, const Efficiency& b) { return a == b; }

TEST(HardwareIni, SetsEveryField) {
  testing::TempDir dir;
  const std::string path = write_ini(dir,
                                     "# a hypothetical node\n"
                                     "[gpu]\n"
                                     "name = h100-tuned\n"
                                     "bf16_tflops = 700  # measured, not the datasheet\n"
                                     "f32_tflops = 60.5\n"
                                     "hbm_gib = 94\n"
                                     "hbm_gbps = 3900\n"
                                     "\n"
                                     "; NVLink as measured\n"
                                     "[intra]\n"
                                     "name = nvlink4-measured\n"
                                     "gbps = 360\n"
                                     "latency_us = 2.5\n"
                                     "[inter]\n"
                                     "name = roce\n"
                                     "gbps = 40\n"
                                     "latency_us = 0\n"
                                     "[cluster]\n"
                                     "gpus_per_node = 4\n"
                                     "nodes = 16\n"
                                     "nics_per_node = 2\n"
                                     "[efficiency]\n"
                                     "matmul = 0.7\n"
                                     "matmul_overhead_us = 0\n"
                                     "attention = 0.05\n"
                                     "softmax_attention = 0.3\n"
                                     "softmax_attention_half_length = 0\n"
                                     "softmax_attention_forward_us = 5\n"
                                     "softmax_attention_backward_us = 15.5\n"
                                     "softmax_attention_dropout_forward_ops = 0\n"
                                     "softmax_attention_dropout_backward_ops = 12\n"
                                     "memory = 1\n"
                                     "elementwise = 0.38\n");
  ClusterSpec c = make_cluster("h100", 8, 1);
  Efficiency e;
  apply_hardware_ini(path, c, e);
  EXPECT_EQ(c.gpu.name, "h100-tuned");
  EXPECT_EQ(c.gpu.bf16_tflops, 700);
  EXPECT_EQ(c.gpu.f32_tflops, 60.5);
  EXPECT_EQ(c.gpu.hbm_gib, 94);
  EXPECT_EQ(c.gpu.hbm_gbps, 3900);
  EXPECT_EQ(c.intra.name, "nvlink4-measured");
  EXPECT_EQ(c.intra.gbps, 360);
  EXPECT_EQ(c.intra.latency_us, 2.5);
  EXPECT_EQ(c.inter.name, "roce");
  EXPECT_EQ(c.inter.gbps, 40);
  EXPECT_EQ(c.inter.latency_us, 0);
  EXPECT_EQ(c.gpus_per_node, 4);
  EXPECT_EQ(c.nodes, 16);
  EXPECT_EQ(c.nics_per_node, 2);
  EXPECT_EQ(e.matmul, 0.7);
  EXPECT_EQ(e.matmul_overhead_us, 0);
  EXPECT_EQ(e.attention, 0.05);
  EXPECT_EQ(e.softmax_attention, 0.3);
  EXPECT_EQ(e.softmax_attention_half_length, 0);
  EXPECT_EQ(e.softmax_attention_forward_us, 5);
  EXPECT_EQ(e.softmax_attention_backward_us, 15.5);
  EXPECT_EQ(e.softmax_attention_dropout_forward_ops, 0);
  EXPECT_EQ(e.softmax_attention_dropout_backward_ops, 12);
  EXPECT_EQ(e.memory, 1);
  EXPECT_EQ(e.elementwise, 0.38);
}

TEST(HardwareIni, KeepsWhatTheFileDoesNotName) {
  testing::TempDir dir;
  ClusterSpec c = make_cluster("h200", 8, 2);
  Efficiency e;
  const ClusterSpec before = c;
  // An empty section, and a section given twice.
  apply_hardware_ini(write_ini(dir, "[gpu]\nhbm_gbps = 4000\n[cluster]\n[gpu]\nhbm_gib = 90\n"), c, e);
  EXPECT_EQ(c.gpu.hbm_gbps, 4000);
  ClusterSpec expected = before;
  expected.gpu.hbm_gbps = 4000;
  expected.gpu.hbm_gib = 90;
  EXPECT_TRUE(same(c, expected));
  EXPECT_TRUE(same(e, Efficiency{}));
}

TEST(HardwareIni, EveryErrorNamesFileKeyAndValueAndChangesNothing) {
  testing::TempDir dir;
  const std::string path = dir / "hw.ini";
  struct Case {
    std::string text, message;
  };
  const std::string at1 = path + ":1: ", at2 = path + ":2: ", at3 = path + ":3: ";
  const Case cases[] = {
      {"[gpus]\nbf16_tflops = 700\n",
       at1 + "unknown section [gpus] (known: [gpu], [intra], [inter], [cluster], [efficiency])"},
      {"[nvme]\n", at1 + "unknown section [nvme]"},
      {"[gpu\n", at1 + "[gpu: expected [section]"},
      {"[gpu]\nbf16 = 700\n",
       at2 + "[gpu] bf16 = 700: unknown key bf16 in [gpu] (known: name, bf16_tflops, f32_tflops, "
             "hbm_gib, hbm_gbps, overlap_compute_slowdown, overlap_comm_slowdown)"},
      {"[gpu]\nbf16_tflops = fast\n", at2 + "[gpu] bf16_tflops = fast: not a number"},
      {"[gpu]\nbf16_tflops = 700 TFLOP/s\n", at2 + "[gpu] bf16_tflops = 700 TFLOP/s: not a number"},
      {"[gpu]\nbf16_tflops = nan\n", at2 + "[gpu] bf16_tflops = nan: not a number"},
      {"[gpu]\nbf16_tflops = 0\n", at2 + "[gpu] bf16_tflops = 0: must be positive"},
      {"[gpu]\nhbm_gib =\n", at2 + "[gpu] hbm_gib = : no value"},
      {"[gpu]\nname = # none\n", at2 + "[gpu] name = : no value"},
      {"[intra]\ngbps = -1\n", at2 + "[intra] gbps = -1: must be positive"},
      {"[inter]\nlatency_us = -2\n", at2 + "[inter] latency_us = -2: must be >= 0"},
      {"[cluster]\nnodes = 2.5\n", at2 + "[cluster] nodes = 2.5: not a whole number"},
      {"[cluster]\ngpus_per_node = 0\n", at2 + "[cluster] gpus_per_node = 0: must be positive"},
      {"[cluster]\nnics_per_node = 99999999999\n",
       at2 + "[cluster] nics_per_node = 99999999999: too large"},
      {"bf16_tflops = 700\n", at1 + "bf16_tflops = 700: outside a section (known: [gpu]"},
      {"[gpu]\nbf16_tflops 700\n", at2 + "bf16_tflops 700: expected key = value or [section]"},
      {"[gpu]\nbf16_tflops = 1\nbf16_tflops = 2\n",
       at3 + "[gpu] bf16_tflops = 2: already set on line 2"},
      {"[efficiency]\nelementwise = 1.2\n",
       at2 + "[efficiency] elementwise = 1.2: a share of the peak, must be > 0 and <= 1"},
      {"[efficiency]\nmatmul = 0\n", at2 + "[efficiency] matmul = 0: a share of the peak, must be > 0 and <= 1"},
      {"[efficiency]\nmatmul_overhead_us = -1\n", at2 + "[efficiency] matmul_overhead_us = -1: must be >= 0"},
      {"[efficiency]\ngemm = 0.5\n",
       at2 + "[efficiency] gemm = 0.5: unknown key gemm in [efficiency] (known: matmul, matmul_overhead_us, "
             "attention, softmax_attention, softmax_attention_half_length, softmax_attention_forward_us, "
             "softmax_attention_backward_us, softmax_attention_dropout_forward_ops, "
             "softmax_attention_dropout_backward_ops, memory, elementwise)"},
      {"[efficiency]\nsoftmax_attention_dropout_backward_ops = -3\n",
       at2 + "[efficiency] softmax_attention_dropout_backward_ops = -3: must be >= 0"},
      // A good value before the bad one is not applied either (checked below).
      {"[gpu]\nhbm_gbps = 1\n[cluster]\nnodes = none\n",
       path + ":4: [cluster] nodes = none: not a whole number"},
      {"[efficiency]\nelementwise = 0.4\n[cluster]\nnodes = none\n",
       path + ":4: [cluster] nodes = none: not a whole number"},
  };
  for (const Case& test : cases) {
    write_ini(dir, test.text);
    ClusterSpec c = make_cluster("h100", 8, 1);
    Efficiency e;
    const ClusterSpec before = c;
    const std::string message = error_of([&] { apply_hardware_ini(path, c, e); });
    EXPECT_EQ(message.substr(0, test.message.size()), test.message) << test.text;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_TRUE(same(c, before)) << test.text;
    EXPECT_TRUE(same(e, Efficiency{})) << test.text;
  }
  ClusterSpec c = make_cluster("h100", 8, 1);
  Efficiency e;
  EXPECT_EQ(error_of([&] { apply_hardware_ini(dir / "missing.ini", c, e); }),
            dir / "missing.ini" + ": cannot open the hardware file");
}

TEST(HardwareOverride, SetsOneField) {
  ClusterSpec c = make_cluster("h100", 8, 1);
  Efficiency e;
  apply_hardware_override("gpu.bf16_tflops=700", c, e);
  EXPECT_EQ(c.gpu.bf16_tflops, 700);
  apply_hardware_override("inter.latency_us = 1.5", c, e);  // spaces around the parts are fine
  EXPECT_EQ(c.inter.latency_us, 1.5);
  apply_hardware_override("cluster.nodes=4", c, e);
  EXPECT_EQ(c.nodes, 4);
  apply_hardware_override("intra.name=nvswitch", c, e);
  EXPECT_EQ(c.intra.name, "nvswitch");
  EXPECT_TRUE(same(e, Efficiency{}));
  apply_hardware_override("efficiency.elementwise=0.38", c, e);
  EXPECT_EQ(e.elementwise, 0.38);
  Efficiency expected;
  expected.elementwise = 0.38;
  EXPECT_TRUE(same(e, expected));
}

TEST(HardwareOverride, EveryErrorNamesTheArgument) {
  struct Case {
    std::string assignment, message;
  };
  const Case cases[] = {
      {"gpu.bf16_tflops", "--hw gpu.bf16_tflops: expected section.key=value"},
      {"bf16_tflops=700", "--hw bf16_tflops=700: expected section.key=value"},
      {"gpu=h100.x", "--hw gpu=h100.x: expected section.key=value"},
      {"gpus.bf16_tflops=700", "--hw gpus.bf16_tflops=700: unknown section [gpus] (known: [gpu]"},
      {"gpu.bf16=700", "--hw gpu.bf16=700: unknown key bf16 in [gpu] (known: name, bf16_tflops"},
      {"gpu.bf16_tflops=fast", "--hw gpu.bf16_tflops=fast: not a number"},
      {"gpu.bf16_tflops=", "--hw gpu.bf16_tflops=: no value"},
      {"gpu.hbm_gbps=-3", "--hw gpu.hbm_gbps=-3: must be positive"},
      {"intra.latency_us=-1", "--hw intra.latency_us=-1: must be >= 0"},
      {"gpu.overlap_compute_slowdown=-0.5", "--hw gpu.overlap_compute_slowdown=-0.5: must be >= 0"},
      {"cluster.gpus_per_node=eight", "--hw cluster.gpus_per_node=eight: not a whole number"},
      {"cluster.nodes=0", "--hw cluster.nodes=0: must be positive"},
      {"efficiency.softmax_attention=46", "--hw efficiency.softmax_attention=46: a share of the peak"},
      {"efficiency.memory=-0.5", "--hw efficiency.memory=-0.5: a share of the peak"},
  };
  for (const Case& test : cases) {
    ClusterSpec c = make_cluster("h100", 8, 1);
    Efficiency e;
    const ClusterSpec before = c;
    const std::string message = error_of([&] { apply_hardware_override(test.assignment, c, e); });
    EXPECT_EQ(message.substr(0, test.message.size()), test.message) << test.assignment;
    EXPECT_TRUE(same(c, before)) << test.assignment;
    EXPECT_TRUE(same(e, Efficiency{})) << test.assignment;
  }
}

TEST(HardwareOverride, FieldNamesListTheTable) {
  const std::vector<std::string> names = hardware_field_names();
  ASSERT_EQ(names.size(), 27u);
  EXPECT_EQ(names.front(), "gpu.name");
  EXPECT_EQ(names[15], "cluster.nics_per_node");
  EXPECT_EQ(names.back(), "efficiency.elementwise");
  // Every listed name is accepted by --hw.
  for (const std::string& name : names) {
    ClusterSpec c = make_cluster("h100", 8, 1);
    Efficiency e;
    const bool text = name.ends_with(".name");
    const bool share = name.starts_with("efficiency.");
    EXPECT_NO_THROW(apply_hardware_override(name + (text ? "=x" : share ? "=0.5" : "=2"), c, e)) << name;
  }
  // The efficiencies as reports list them: the table's [efficiency] keys
  // with the struct's values.
  Efficiency e;
  e.matmul = 0.7;
  e.elementwise = 0.38;
  const std::vector<std::pair<std::string, double>> values = efficiency_values(e);
  const std::vector<std::pair<std::string, double>> expected = {
      {"matmul", 0.7},
      {"matmul_overhead_us", e.matmul_overhead_us},
      {"attention", e.attention},
      {"softmax_attention", e.softmax_attention},
      {"softmax_attention_half_length", e.softmax_attention_half_length},
      {"softmax_attention_forward_us", e.softmax_attention_forward_us},
      {"softmax_attention_backward_us", e.softmax_attention_backward_us},
      {"softmax_attention_dropout_forward_ops", e.softmax_attention_dropout_forward_ops},
      {"softmax_attention_dropout_backward_ops", e.softmax_attention_dropout_backward_ops},
      {"memory", e.memory},
      {"elementwise", 0.38}};
  EXPECT_EQ(values, expected);
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ("efficiency." + values[i].first, names[16 + i]);
}

}  // namespace
}  // namespace linpar::sim
