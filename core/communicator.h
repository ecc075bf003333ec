// Communicators: one interface over which every parallel strategy talks. It
// lives in core so that model layers can name the collective they need (a
// tensor-parallel layer all-reduces its partial output) without depending on
// a backend: parallel/ implements it over MPI for CPU tensors, and the NCCL
// backend for CUDA tensors slots in behind the same calls. Every call adds to
// per-kind byte and call counters (the metrics' comm_bytes and the tests'
// closed-form traffic checks read them).
#pragma once

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
// it was given must stay alive until then). Destroying it waits too. For CUDA
// tensors (NCCL) "blocks" means the compute stream: work queued after wait()
// on the legacy default stream, copies to the host included, sees the
// result, while the host itself does not stop.
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
  // Element-wise maximum over ranks, in place (vocab-parallel softmax).
  virtual void all_reduce_max(Tensor& t) = 0;
  virtual std::unique_ptr<CommRequest> all_reduce_async(Tensor& t) = 0;
  // Mean over ranks, in place (DDP's gradient average). By default the sum,
  // scaled when waited on; NCCL averages inside the collective (ncclAvg), so
  // no pass over the buffer follows.
  virtual std::unique_ptr<CommRequest> all_reduce_average_async(Tensor& t);
  // out = concatenation of every rank's `in` along dim 0 (out.dim(0) = size·in.dim(0)).
  virtual void all_gather(const Tensor& in, Tensor& out) = 0;
  virtual std::unique_ptr<CommRequest> all_gather_async(const Tensor& in, Tensor& out) = 0;
  // out = this rank's block (dim 0) of the sum over ranks of `in`. In place
  // when `out` is this rank's block of `in` (NCCL's convention; the rest of
  // `in` is then spent).
  virtual void reduce_scatter(const Tensor& in, Tensor& out) = 0;
  virtual std::unique_ptr<CommRequest> reduce_scatter_async(const Tensor& in, Tensor& out) = 0;
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
  // Counts one call of `payload_bytes` per rank (an all-reduce's buffer, an
  // all-gather's input, a reduce-scatter's output, a send's message): its
  // wire bytes in the counters, and the call in the op being recorded
  // (core/op_stats.h).
  void count_call(CollectiveKind kind, int64_t payload_bytes);
  CommCounters counters_;

 private:
  std::string group_;
};

}  // namespace linpar
