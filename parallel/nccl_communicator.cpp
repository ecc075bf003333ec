// Compiled by the host compiler: NCCL and the CUDA runtime are host APIs.
#ifdef LINPAR_HAVE_CUDA

#include "parallel/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/cuda/cuda_runtime.h"
#include "core/error.h"

#define NCCL_CHECK(call)                                                                    \
  do {                                                                                      \
    ncclResult_t linpar_nccl_status_ = (call);                                              \
    if (linpar_nccl_status_ != ncclSuccess) {                                               \
      ::linpar::internal_error(__FILE__, __LINE__,                                          \
                               std::string(#call ": ") + ncclGetErrorString(linpar_nccl_status_)); \
    }                                                                                       \
  } while (0)

#define MPI_OK(call)                                                                  \
  do {                                                                                \
    if ((call) != MPI_SUCCESS) ::linpar::internal_error(__FILE__, __LINE__, #call); \
  } while (0)

namespace linpar {

namespace {

ncclDataType_t nccl_type(const Tensor& t) {
  if (t.device() != Device::CUDA) {
    internal_error(__FILE__, __LINE__, "NCCL communicator: a tensor on the CPU");
  }
  switch (t.dtype()) {
    case DType::F32:
      return ncclFloat32;
    case DType::F64:
      return ncclFloat64;
    case DType::BF16:
      return ncclBfloat16;
    case DType::I32:
      return ncclInt32;
  }
  internal_error(__FILE__, __LINE__, "NCCL communicator: unknown dtype");
}

// Completion of work queued on a communication stream. Waiting makes the
// compute (legacy default) stream wait for it instead of the host: whatever
// uses the result — a kernel, a copy to the host, a block the caching
// allocator hands out again — is queued on that stream and so runs after the
// collective, while the host goes on queueing work (blocking the host here
// drained the GPU at every LASP ring hop and DDP bucket).
class NcclRequest final : public CommRequest {
 public:
  explicit NcclRequest(cudaStream_t stream) {
    CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(event_, stream));
  }
  ~NcclRequest() override {
    if (event_ != nullptr) {
      if (!waited_) cudaStreamWaitEvent(cudaStreamLegacy, event_, 0);  // no throw here
      cudaEventDestroy(event_);  // released once the event completes
    }
  }
  void wait() override {
    CUDA_CHECK(cudaStreamWaitEvent(cudaStreamLegacy, event_, 0));
    waited_ = true;
  }

 private:
  cudaEvent_t event_ = nullptr;
  bool waited_ = false;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm group, std::string name) : Communicator(std::move(name)) {
    MPI_OK(MPI_Comm_rank(group, &rank_));
    MPI_OK(MPI_Comm_size(group, &size_));
    ncclUniqueId id;
    if (rank_ == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_OK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, group));
    NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  }
  ~NcclCommunicator() override {
    cudaStreamSynchronize(stream_);
    ncclCommDestroy(comm_);
    cudaEventDestroy(ready_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce(Tensor& t) override { all_reduce_async(t)->wait(); }
  void all_reduce_max(Tensor& t) override {
    begin();
    NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), count(t), nccl_type(t), ncclMax, comm_, stream_));
    count_call(CollectiveKind::AllReduce, bytes(t));
    finish()->wait();
  }
  std::unique_ptr<CommRequest> all_reduce_async(Tensor& t) override {
    begin();
    NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), count(t), nccl_type(t), ncclSum, comm_, stream_));
    count_call(CollectiveKind::AllReduce, bytes(t));
    return finish();
  }
  std::unique_ptr<CommRequest> all_reduce_average_async(Tensor& t) override {
    begin();
    NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), count(t), nccl_type(t), ncclAvg, comm_, stream_));
    count_call(CollectiveKind::AllReduce, bytes(t));
    return finish();
  }
  void all_gather(const Tensor& in, Tensor& out) override { all_gather_async(in, out)->wait(); }
  std::unique_ptr<CommRequest> all_gather_async(const Tensor& in, Tensor& out) override {
    check(out.numel() == in.numel() * size_ && out.dtype() == in.dtype(), "all_gather", in, out);
    begin();
    NCCL_CHECK(ncclAllGather(in.raw_data(), out.raw_data(), count(in), nccl_type(in), comm_, stream_));
    count_call(CollectiveKind::AllGather, bytes(in));
    return finish();
  }
  void reduce_scatter(const Tensor& in, Tensor& out) override {
    reduce_scatter_async(in, out)->wait();
  }
  std::unique_ptr<CommRequest> reduce_scatter_async(const Tensor& in, Tensor& out) override {
    check(in.numel() == out.numel() * size_ && out.dtype() == in.dtype(), "reduce_scatter", in, out);
    begin();
    NCCL_CHECK(ncclReduceScatter(in.raw_data(), out.raw_data(), count(out), nccl_type(in), ncclSum,
                                 comm_, stream_));
    count_call(CollectiveKind::ReduceScatter, bytes(out));
    return finish();
  }
  void broadcast(Tensor& t, int root) override {
    begin();
    NCCL_CHECK(ncclBroadcast(t.raw_data(), t.raw_data(), count(t), nccl_type(t), root, comm_, stream_));
    count_call(CollectiveKind::Broadcast, bytes(t));
    finish()->wait();
  }
  void all_to_all(const Tensor& in, Tensor& out) override {
    check(in.numel() == out.numel() && in.numel() % size_ == 0 && in.dtype() == out.dtype(),
          "all_to_all", in, out);
    const size_t block = static_cast<size_t>(in.numel() / size_);
    const size_t block_bytes = block * dtype_size(in.dtype());
    begin();
    NCCL_CHECK(ncclGroupStart());
    for (int peer = 0; peer < size_; ++peer) {
      NCCL_CHECK(ncclSend(static_cast<const char*>(in.raw_data()) + peer * block_bytes, block,
                          nccl_type(in), peer, comm_, stream_));
      NCCL_CHECK(ncclRecv(static_cast<char*>(out.raw_data()) + peer * block_bytes, block,
                          nccl_type(out), peer, comm_, stream_));
    }
    NCCL_CHECK(ncclGroupEnd());
    count_call(CollectiveKind::AllToAll, bytes(in));
    finish()->wait();
  }
  void send(const Tensor& t, int peer) override { send_async(t, peer)->wait(); }
  void recv(Tensor& t, int peer) override { recv_async(t, peer)->wait(); }
  std::unique_ptr<CommRequest> send_async(const Tensor& t, int peer) override {
    begin();
    NCCL_CHECK(ncclSend(t.raw_data(), count(t), nccl_type(t), peer, comm_, stream_));
    count_call(CollectiveKind::SendRecv, bytes(t));
    return finish();
  }
  std::unique_ptr<CommRequest> recv_async(Tensor& t, int peer) override {
    begin();
    NCCL_CHECK(ncclRecv(t.raw_data(), count(t), nccl_type(t), peer, comm_, stream_));
    return finish();  // bytes are counted by the sender
  }
  void barrier() override {
    Tensor one = Tensor::zeros({1}, DType::F32, Device::CUDA);
    all_reduce(one);
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // a barrier holds the host too
  }

 private:
  static size_t count(const Tensor& t) { return static_cast<size_t>(t.numel()); }
  static int64_t bytes(const Tensor& t) { return static_cast<int64_t>(t.nbytes()); }
  static void check(bool ok, const char* what, const Tensor& in, const Tensor& out) {
    if (!ok) {
      internal_error(__FILE__, __LINE__,
                     std::string(what) + " " + shape_string(in.shape()) + " -> " + shape_string(out.shape()));
    }
  }
  // The communication stream waits for what the compute (legacy default)
  // stream has queued, so a collective reads finished data.
  void begin() {
    CUDA_CHECK(cudaEventRecord(ready_, cudaStreamLegacy));
    CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
  }
  std::unique_ptr<CommRequest> finish() { return std::make_unique<NcclRequest>(stream_); }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace

bool nccl_available() { return cuda::available(); }

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm group, std::string name) {
  if (!cuda::available()) user_error("--device cuda: no CUDA device is present on this machine");
  return std::make_unique<NcclCommunicator>(group, std::move(name));
}

int select_local_device() {
  MPI_Comm node;
  MPI_OK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int local = 0;
  MPI_OK(MPI_Comm_rank(node, &local));
  MPI_Comm_free(&node);
  const int devices = cuda::device_count();
  if (devices == 0) user_error("--device cuda: no CUDA device is present on this machine");
  const int device = local % devices;
  CUDA_CHECK(cudaSetDevice(device));
  return device;
}

}  // namespace linpar

#endif  // LINPAR_HAVE_CUDA
