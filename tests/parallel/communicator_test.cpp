// The MPI communicator (run under mpirun -np 2 and -np 4): every call's result
// and the bytes it counts, against the ring-algorithm formulas; the all-gather
// and reduce-scatter also in place.
#include "parallel/communicator.h"

#include <gtest/gtest.h>

#include "parallel/process_grid.h"

namespace linpar {

namespace {

void check_collectives(Communicator& comm) {
  comm.reset_counters();
  const int n = comm.size(), r = comm.rank();
  Tensor t = Tensor::from_vector<float>({3}, {1.0f * r, 2.0f, -1.0f * r});
  comm.all_reduce(t);
  const float rank_sum = static_cast<float>(n * (n - 1) / 2);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{rank_sum, 2.0f * n, -rank_sum}));
  EXPECT_EQ(comm.counters().bytes[static_cast<int>(CollectiveKind::AllReduce)],
            2 * (n - 1) * 12 / n);

  Tensor mine = Tensor::from_vector<double>({2}, {1.0 * r, 10.0 * r});
  Tensor all = Tensor::empty({2 * n}, DType::F64);
  comm.all_gather(mine, all);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(all.data<double>()[2 * i], i);
    EXPECT_EQ(all.data<double>()[2 * i + 1], 10.0 * i);
  }
  EXPECT_EQ(comm.counters().bytes[static_cast<int>(CollectiveKind::AllGather)], (n - 1) * 16);

  Tensor full = Tensor::empty({n, 2}, DType::F64);
  for (int i = 0; i < 2 * n; ++i) full.data<double>()[i] = i + r;
  Tensor block = Tensor::empty({1, 2}, DType::F64);
  comm.reduce_scatter(full, block);
  EXPECT_EQ(block.data<double>()[0], n * (2 * r) + n * (n - 1) / 2.0);
  EXPECT_EQ(comm.counters().bytes[static_cast<int>(CollectiveKind::ReduceScatter)], (n - 1) * 16);

  // In place, as ZeRO-1 runs them (NCCL's convention: this rank's block of
  // the buffer is the all-gather's input and the reduce-scatter's output).
  Tensor buffer = Tensor::zeros({3 * n}, DType::F32);
  for (int j = 0; j < 3; ++j) buffer.data<float>()[3 * r + j] = 10.0f * r + j;
  comm.all_gather(buffer.slice0(3 * r, 3 * r + 3), buffer);
  for (int i = 0; i < 3 * n; ++i) EXPECT_EQ(buffer.data<float>()[i], 10.0f * (i / 3) + i % 3);
  for (int i = 0; i < 3 * n; ++i) buffer.data<float>()[i] = static_cast<float>(i * (r + 1));
  Tensor own = buffer.slice0(3 * r, 3 * r + 3);
  comm.reduce_scatter(buffer, own);
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(buffer.data<float>()[3 * r + j], static_cast<float>((3 * r + j) * n * (n + 1) / 2));
  }
  EXPECT_EQ(comm.counters().bytes[static_cast<int>(CollectiveKind::AllGather)],
            (n - 1) * 16 + (n - 1) * 12);
  EXPECT_EQ(comm.counters().bytes[static_cast<int>(CollectiveKind::ReduceScatter)],
            (n - 1) * 16 + (n - 1) * 12);

  Tensor to_all = Tensor::empty({n}, DType::I32), from_all = Tensor::empty({n}, DType::I32);
  for (int j = 0; j < n; ++j) to_all.data<int32_t>()[j] = 100 * r + j;
  comm.all_to_all(to_all, from_all);
  for (int i = 0; i < n; ++i) EXPECT_EQ(from_all.data<int32_t>()[i], 100 * i + r);

  Tensor ring = Tensor::from_vector<float>({1}, {static_cast<float>(r)});
  Tensor got = Tensor::empty({1}, DType::F32);
  auto sent = comm.send_async(ring, (r + 1) % n);
  comm.recv(got, (r + n - 1) % n);
  sent->wait();
  EXPECT_EQ(got.data<float>()[0], static_cast<float>((r + n - 1) % n));
  EXPECT_EQ(comm.counters().bytes[static_cast<int>(CollectiveKind::SendRecv)], 4);
}

}  // namespace

TEST(CommunicatorNp2, CollectivesAndCounters) {
  ProcessGrid grid({2, 1, 1, 1}, MPI_COMM_WORLD);
  check_collectives(grid.world());
}

TEST(CommunicatorNp4, CollectivesAndCounters) {
  ProcessGrid grid({4, 1, 1, 1}, MPI_COMM_WORLD);
  check_collectives(grid.world());
}

TEST(ProcessGridNp8, GroupsFollowMegatronOrder) {
  ProcessGrid grid({2, 2, 2, 1}, MPI_COMM_WORLD);  // dp 2, tp 2, pp 2
  const auto& c = grid.coordinates();
  EXPECT_EQ(grid.rank(), (c.pp * 2 + c.dp) * 2 + c.tp);
  EXPECT_EQ(grid.tp().size(), 2);
  EXPECT_EQ(grid.dp().size(), 2);
  EXPECT_EQ(grid.pp().size(), 2);
  EXPECT_EQ(grid.sp().size(), 1);
  // Members of my TP group are the ranks next to me.
  Tensor me = Tensor::from_vector<int32_t>({1}, {grid.rank()});
  Tensor peers = Tensor::empty({2}, DType::I32);
  grid.tp().all_gather(me, peers);
  EXPECT_EQ(peers.data<int32_t>()[1] - peers.data<int32_t>()[0], 1);
  grid.dp().all_gather(me, peers);
  EXPECT_EQ(peers.data<int32_t>()[1] - peers.data<int32_t>()[0], 2);
  grid.pp().all_gather(me, peers);
  EXPECT_EQ(peers.data<int32_t>()[1] - peers.data<int32_t>()[0], 4);
  check_collectives(grid.tp());
}

TEST(ProcessGridNp2, RejectsAWorldOfTheWrongSize) {
  EXPECT_THROW(ProcessGrid({4, 1, 1, 1}, MPI_COMM_WORLD), UserError);
}

}  // namespace linpar
