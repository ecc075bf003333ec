// Communicators: one interface over which every parallel strategy talks, with
// an MPI backend for CPU tensors (this file's MpiCommunicator) and an NCCL
// backend for CUDA tensors slotting in behind the same calls. Every call adds
// to per-kind byte and call counters (the metrics' comm_bytes and the tests'
// closed-form traffic checks read them).
#pragma once

#include <mpi.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace linpar {

enum class CollectiveKind : int {
  AllReduce,
  AllGather,
  ReduceScatter,
  Broadcast,
  AllToAll,
  SendRecv
};
inline constexpr int kCollectiveKinds = 6;
const char* collective_name(CollectiveKind kind);

// Bytes each call puts on the wire from this rank, by the bandwidth-optimal
// (ring) algorithms, for n ranks and a payload of `bytes`:
//   all-reduce 2(n−1)/n·B, all-gather (n−1)·B_in, reduce-scatter (n−1)·B_out,
//   broadcast (n−1)/n·B, all-to-all (n−1)/n·B, send B.
int64_t wire_bytes(CollectiveKind kind, int64_t ranks, int64_t payload_bytes);

struct CommCounters {
  std::array<int64_t, kCollectiveKinds> bytes{};
  std::array<int64_t, kCollectiveKinds> calls{};
  int64_t total_bytes() const;
  void add(CollectiveKind kind, int64_t wire);
};

// A pending asynchronous call; wait() blocks until it is complete (the tensors
// it was given must stay alive until then). Destroying it waits too.
class CommRequest {
 public:
  virtual ~CommRequest() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  const std::string& group() const { return group_; }

  // Sum over ranks, in place.
  virtual void all_reduce(Tensor& t) = 0;
  virtual std::unique_ptr<CommRequest> all_reduce_async(Tensor& t) = 0;
  // out = concatenation of every rank's `in` along dim 0 (out.dim(0) = size·in.dim(0)).
  virtual void all_gather(const Tensor& in, Tensor& out) = 0;
  // out = this rank's block (dim 0) of the sum over ranks of `in`.
  virtual void reduce_scatter(const Tensor& in, Tensor& out) = 0;
  virtual void broadcast(Tensor& t, int root) = 0;
  // Block j of `in` (dim 0, size blocks) goes to rank j; block i of `out` comes from rank i.
  virtual void all_to_all(const Tensor& in, Tensor& out) = 0;
  virtual void send(const Tensor& t, int peer) = 0;
  virtual void recv(Tensor& t, int peer) = 0;
  virtual std::unique_ptr<CommRequest> send_async(const Tensor& t, int peer) = 0;
  virtual std::unique_ptr<CommRequest> recv_async(Tensor& t, int peer) = 0;
  virtual void barrier() = 0;

  const CommCounters& counters() const { return counters_; }
  void reset_counters() { counters_ = CommCounters{}; }

 protected:
  explicit Communicator(std::string group) : group_(std::move(group)) {}
  CommCounters counters_;

 private:
  std::string group_;
};

// MPI backend (CPU tensors, f32/f64/i32). Owns its MPI communicator.
class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (freed in the destructor unless it is MPI_COMM_WORLD).
  MpiCommunicator(MPI_Comm comm, std::string group);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm comm() const { return comm_; }

  void all_reduce(Tensor& t) override;
  std::unique_ptr<CommRequest> all_reduce_async(Tensor& t) override;
  void all_gather(const Tensor& in, Tensor& out) override;
  void reduce_scatter(const Tensor& in, Tensor& out) override;
  void broadcast(Tensor& t, int root) override;
  void all_to_all(const Tensor& in, Tensor& out) override;
  void send(const Tensor& t, int peer) override;
  void recv(Tensor& t, int peer) override;
  std::unique_ptr<CommRequest> send_async(const Tensor& t, int peer) override;
  std::unique_ptr<CommRequest> recv_async(Tensor& t, int peer) override;
  void barrier() override;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace linpar
