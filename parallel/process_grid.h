// The process grid (Megatron's parallel state): world = pp × dp × sp × tp with
// tp varying fastest, then sp, then dp, then pp, so a tensor-parallel group
// sits inside a node. One object owns a communicator per group and answers
// "who are my peers".
#pragma once

#include <memory>
#include <string>

#include "model/layout.h"
#include "parallel/communicator.h"

namespace linpar {

struct ParallelLayout {
  int dp = 1, tp = 1, pp = 1, sp = 1;
  int world() const { return dp * tp * pp * sp; }
  std::string describe() const;  // "dp 2, tp 2, pp 1, sp 1"
};

// A layout's degrees (model/layout.h holds them with the strategies and
// batch), and a layout with these degrees and the rest of `rest`.
inline ParallelLayout degrees(const Layout& l) { return {l.dp, l.tp, l.pp, l.sp}; }
inline Layout with_degrees(Layout rest, const ParallelLayout& d) {
  rest.dp = d.dp;
  rest.tp = d.tp;
  rest.pp = d.pp;
  rest.sp = d.sp;
  return rest;
}

struct GridCoordinates {
  int dp = 0, tp = 0, pp = 0, sp = 0;
};

// rank = ((pp·DP + dp)·SP + sp)·TP + tp
int grid_rank(const ParallelLayout& layout, const GridCoordinates& c);
GridCoordinates grid_coordinates(const ParallelLayout& layout, int rank);

class ProcessGrid {
 public:
  // UserError when the world size is not dp·tp·pp·sp. On Device::CUDA every
  // rank first takes a GPU by its node-local rank, and each group's
  // communicator carries CUDA tensors over NCCL (host tensors over MPI);
  // the world communicator stays MPI (host-side sums and handshakes).
  ProcessGrid(const ParallelLayout& layout, MPI_Comm world, Device device = Device::CPU);
  Device device() const { return device_; }

  const ParallelLayout& layout() const { return layout_; }
  const GridCoordinates& coordinates() const { return coordinates_; }
  int rank() const { return rank_; }
  bool is_first_rank() const { return rank_ == 0; }

  Communicator& world() { return *world_; }
  Communicator& dp() { return *dp_; }
  Communicator& tp() { return *tp_; }
  Communicator& pp() { return *pp_; }
  // The pipeline's gradients under interleaved 1F1B: a second group of the
  // same ranks, so that activations and gradients sent the same way between
  // two stages (pp 2, or the last stage to the first) never match each
  // other's receives.
  Communicator& pp_gradients() { return pp_gradients_ ? *pp_gradients_ : *pp_; }
  Communicator& sp() { return *sp_; }
  // The group gradients are averaged over: DP replicas and, with sequence
  // parallelism, the SP ranks too (they hold the same parameters and each
  // computed the gradient of its chunk; Megatron's data-parallel group "with
  // context parallel"). The DP group itself when sp == 1.
  Communicator& data_parallel() { return dp_sp_ ? *dp_sp_ : *dp_; }
  // The embedding group (Megatron's name): the first and the last pipeline
  // stage of one (dp, sp, tp) column, which both hold the tied embedding
  // matrix and sum its gradient. Null on the other stages and when pp == 1.
  Communicator* embedding() { return embedding_.get(); }

 private:
  ParallelLayout layout_;
  GridCoordinates coordinates_;
  int rank_ = 0;
  Device device_ = Device::CPU;
  std::unique_ptr<MpiCommunicator> world_;
  std::unique_ptr<Communicator> dp_, tp_, pp_, pp_gradients_, sp_, dp_sp_, embedding_;
};

}  // namespace linpar
