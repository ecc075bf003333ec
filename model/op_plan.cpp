#include "model/op_plan.h"

#include "core/error.h"

namespace linpar {

const char* comm_group_name(CommGroup group) {
  switch (group) {
    case CommGroup::Dp:
    case CommGroup::DpSp:
      return "dp";
    case CommGroup::Tp:
      return "tp";
    case CommGroup::Pp:
      return "pp";
    case CommGroup::Sp:
      return "sp";
    case CommGroup::Embedding:
      return "embedding";
  }
  return "";
}

CommGroup comm_group_named(const std::string& name) {
  for (CommGroup g :
       {CommGroup::DpSp, CommGroup::Tp, CommGroup::Pp, CommGroup::Sp, CommGroup::Embedding}) {
    if (name == comm_group_name(g)) return g;
  }
  LINPAR_CHECK(false, "a collective over group {} (the plan knows dp, tp, pp, sp, embedding)",
               name);
  __builtin_unreachable();
}

PlannedOp planned_op(RecordedOp&& r) {
  PlannedOp op;
  op.name = std::move(r.name);
  op.kind = r.kind();
  op.pass = r.pass;
  op.receive = r.receive;
  op.layer = r.layer;
  op.flops = r.flops;
  op.bytes_read = r.bytes_read;
  op.bytes_written = r.bytes_written;
  op.collectives.reserve(r.collectives.size());
  for (const RecordedCollective& c : r.collectives)
    op.collectives.push_back({c.kind, comm_group_named(c.group), c.bytes});
  if (op.kind == OpKind::Matmul) op.matmul = r.matmul;
  if (op.kind == OpKind::Attention) op.core.head_dim = r.head_dim;
  return op;
}

int64_t matmul_flops(const MatmulShape& s, Pass pass) {
  const int64_t forward = 2 * s.batch * s.m * s.n * s.k;
  return runs_forward_kernels(pass) ? forward : 2 * forward;
}

PlannedOp& OpSite::add(OpKind kind, std::string_view name, int64_t flops, int64_t bytes_read,
                       int64_t bytes_written, std::vector<PlannedCollective> collectives) const {
  PlannedOp op;
  // One allocation (a literal name would otherwise become a std::string
  // first): the planners add millions of ops in a layout search.
  op.name.reserve(prefix.size() + name.size());
  op.name.append(prefix).append(name);
  op.kind = kind;
  op.pass = pass;
  op.layer = layer;
  op.flops = flops;
  op.bytes_read = bytes_read;
  op.bytes_written = bytes_written;
  op.collectives = std::move(collectives);
  plan->add(std::move(op));
  return plan->mutable_ops().back();
}

PlannedOp& OpSite::add_matmul(std::string_view name, MatmulShape shape, int64_t bytes_read,
                              int64_t bytes_written,
                              std::vector<PlannedCollective> collectives) const {
  LINPAR_CHECK(shape.batch > 0 && shape.m > 0 && shape.n > 0 && shape.k > 0,
               "{}{}: product of shape {} x [{}, {}]·[{}, {}]", prefix, name, shape.batch, shape.m,
               shape.k, shape.k, shape.n);
  PlannedOp& op = add(OpKind::Matmul, name, matmul_flops(shape, pass), bytes_read, bytes_written,
                      std::move(collectives));
  op.matmul = shape;
  return op;
}

int64_t OpPlan::total_flops() const {
  int64_t total = 0;
  for (const PlannedOp& op : ops_) total += op.flops;
  return total;
}

int64_t OpPlan::total_bytes() const {
  int64_t total = 0;
  for (const PlannedOp& op : ops_) total += op.bytes_read + op.bytes_written;
  return total;
}

}  // namespace linpar
