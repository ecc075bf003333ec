#include "parallel/process_grid.h"

#include <fmt/format.h>

#include "core/error.h"
#include "parallel/hybrid_communicator.h"
#include "parallel/nccl_communicator.h"

namespace linpar {

std::string ParallelLayout::describe() const {
  return fmt::format("dp {}, tp {}, pp {}, sp {}", dp, tp, pp, sp);
}

int grid_rank(const ParallelLayout& l, const GridCoordinates& c) {
  return ((c.pp * l.dp + c.dp) * l.sp + c.sp) * l.tp + c.tp;
}

GridCoordinates grid_coordinates(const ParallelLayout& l, int rank) {
  GridCoordinates c;
  c.tp = rank % l.tp;
  rank /= l.tp;
  c.sp = rank % l.sp;
  rank /= l.sp;
  c.dp = rank % l.dp;
  c.pp = rank / l.dp;
  return c;
}

namespace {
// Ranks sharing every coordinate but the group's own form one communicator;
// the colour encodes the other coordinates, the key orders by the group's.
std::unique_ptr<Communicator> group(MPI_Comm comm, const char* name, Device device) {
  if (device == Device::CUDA) {
    // The pipeline and LASP ring groups send both ways: a NCCL stream per direction.
    return std::make_unique<HybridCommunicator>(comm, name, std::string(name) == "pp" || std::string(name) == "sp");
  }
  return std::make_unique<MpiCommunicator>(comm, name);
}
std::unique_ptr<Communicator> split(MPI_Comm world, int colour, int key, const char* name,
                                    Device device) {
  MPI_Comm comm;
  MPI_CHECK(MPI_Comm_split(world, colour, key, &comm));
  return group(comm, name, device);
}
}  // namespace

ProcessGrid::ProcessGrid(const ParallelLayout& layout, MPI_Comm world, Device device)
    : layout_(layout), device_(device) {
  int world_size = 0;
  MPI_CHECK(MPI_Comm_size(world, &world_size));
  MPI_CHECK(MPI_Comm_rank(world, &rank_));
  if (layout.world() != world_size) {
    user_error(
        "layout {} needs {} processes, but {} were started (dp·tp·pp·sp must equal the world size)",
        layout.describe(), layout.world(), world_size);
  }
  coordinates_ = grid_coordinates(layout, rank_);
  if (device == Device::CUDA) select_local_device();
  const auto& c = coordinates_;
  const auto& l = layout_;
  MPI_Comm world_copy;
  MPI_CHECK(MPI_Comm_dup(world, &world_copy));
  world_ = std::make_unique<MpiCommunicator>(world_copy, "world");
  tp_ = split(world, (c.pp * l.dp + c.dp) * l.sp + c.sp, c.tp, "tp", device);
  sp_ = split(world, (c.pp * l.dp + c.dp) * l.tp + c.tp, c.sp, "sp", device);
  dp_ = split(world, (c.pp * l.sp + c.sp) * l.tp + c.tp, c.dp, "dp", device);
  pp_ = split(world, (c.dp * l.sp + c.sp) * l.tp + c.tp, c.pp, "pp", device);
  if (l.pp > 1)
    pp_gradients_ = split(world, (c.dp * l.sp + c.sp) * l.tp + c.tp, c.pp, "pp", device);
  if (l.sp > 1) dp_sp_ = split(world, c.pp * l.tp + c.tp, c.dp * l.sp + c.sp, "dp", device);
  // MPI_Comm_split is collective over `world`: every rank calls it, the middle
  // stages with MPI_UNDEFINED, which hands them MPI_COMM_NULL.
  if (l.pp > 1) {
    const bool member = c.pp == 0 || c.pp == l.pp - 1;
    MPI_Comm comm;
    MPI_CHECK(MPI_Comm_split(world, member ? (c.dp * l.sp + c.sp) * l.tp + c.tp : MPI_UNDEFINED,
                             c.pp, &comm));
    if (member) embedding_ = group(comm, "embedding", device);
  }
}

}  // namespace linpar
