// Test scaffolding: a planned op written by its conventional name, typed as
// the planners type the op of that name (kind, pass, layer, product weight).
// The simulator reads only the typed fields; this keeps hand-computed test
// cases readable, and SimOpCosts.PlannersTypeEveryOpAsItsNameSays checks it
// against every op of real plans.
#pragma once

#include <string>

#include "model/op_plan.h"

namespace linpar::testing_ops {

inline bool contains(const std::string& s, const char* part) {
  return s.find(part) != std::string::npos;
}

inline OpKind kind_of_name(const std::string& name) {
  // The SP strategies' sends, gathers and layout copies run no attention
  // kernel (what the run reports: tests/parallel/op_plan_run_test.cpp).
  for (const char* part : {".send_state.", ".send_state_grad.", "allgather.gather.",
                           "allgather.scatter.", "ulysses.to_heads.", "ulysses.to_sequence."}) {
    if (contains(name, part)) return OpKind::Memory;
  }
  for (const char* part : {"lightning_attention.", "lasp.", "lasp2.", "allgather.", "ulysses."}) {
    if (contains(name, part)) return OpKind::Attention;
  }
  if (contains(name, "attention.core.")) return OpKind::SoftmaxAttention;
  for (const char* part :
       {"qkvu_proj.", "out_proj.", "channel_mixer.l1.", "channel_mixer.l2.", "channel_mixer.l3.",
        "lm_head.", "attention.qkv_proj.", "mlp.fc1.", "mlp.fc2.", "mlp.gate_up.", "mlp.down.",
        "attention.scores.", "attention.context."}) {
    if (contains(name, part)) return OpKind::Matmul;
  }
  return OpKind::Memory;
}

inline ProductWeight weight_of_name(const std::string& name) {
  if (contains(name, "qkvu_proj.")) return ProductWeight::QkvuProj;
  if (contains(name, "out_proj.")) return ProductWeight::OutProj;
  if (contains(name, "channel_mixer.l1.") || contains(name, "channel_mixer.l2."))
    return ProductWeight::GluIn;
  if (contains(name, "channel_mixer.l3.")) return ProductWeight::GluOut;
  if (contains(name, "lm_head.")) return ProductWeight::LmHead;
  return ProductWeight::Other;
}

inline int32_t layer_of_name(const std::string& name) {
  if (name.rfind("layers.", 0) == 0) return static_cast<int32_t>(std::stoll(name.substr(7)));
  if (name.rfind("embedding.", 0) == 0) return kEmbeddingLayer;
  return kHeadLayer;
}

inline PlannedOp named_op(const std::string& name, int64_t flops, int64_t bytes_read,
                          int64_t bytes_written, int16_t key_dim = 0) {
  PlannedOp op;
  op.name = name;
  op.kind = kind_of_name(name);
  op.pass = name.ends_with(".backward") ? Pass::Backward : Pass::Forward;
  op.layer = layer_of_name(name);
  op.flops = flops;
  op.bytes_read = bytes_read;
  op.bytes_written = bytes_written;
  if (op.kind == OpKind::Matmul) op.matmul.weight = weight_of_name(name);
  if (op.kind == OpKind::Attention) op.core.head_dim = key_dim;
  return op;
}

}  // namespace linpar::testing_ops
