// The NCCL communicator: CUDA tensors, one GPU per rank (see communicator.h).
//
// Bootstrap: rank 0 creates the ncclUniqueId and the MPI world broadcasts it; every rank then
// joins with ncclCommInitRank on its own device. Collectives run on a stream of their own: an
// event recorded on the compute stream (the legacy default stream every tiller kernel launches
// on) makes the NCCL stream wait for the gradients to exist, and an event recorded after the
// collective makes the compute stream wait for its result. Neither wait blocks the host.
// Compiled only when configured with NCCL (TILLER_HAS_NCCL).
#include <cuda_runtime.h>
#include <nccl.h>

#include "core/dist/mpi_communicator.h"
#include "core/dist/tensor_checks.h"
#include "kernels/error.h"

namespace tiller::dist {

namespace {

[[noreturn]] void throw_nccl(ncclResult_t status, const char* call, const char* file, int line) {
  fail("NCCL error {} ({}; {}) in {} at {}:{}", static_cast<int>(status),
       ncclGetErrorString(status), ncclGetLastError(nullptr), call, file, line);
}

[[noreturn]] void throw_cuda(cudaError_t status, const char* call, const char* file, int line) {
  fail("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(status), cudaGetErrorString(status),
       call, file, line);
}

#define TILLER_NCCL_CHECK(call)                                                               \
  do {                                                                                        \
    ncclResult_t tiller_status_ = (call);                                                     \
    if (tiller_status_ != ncclSuccess) throw_nccl(tiller_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define TILLER_NCCL_CUDA_CHECK(call)                                                          \
  do {                                                                                        \
    cudaError_t tiller_status_ = (call);                                                      \
    if (tiller_status_ != cudaSuccess) throw_cuda(tiller_status_, #call, __FILE__, __LINE__); \
  } while (0)

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return ncclFloat32;
    case DType::bf16:
      return ncclBfloat16;
    case DType::i32:
      return ncclInt32;
  }
  fail("dist (NCCL): unknown dtype");
}

ncclRedOp_t nccl_op(const char* op, const Tensor& tensor, ReduceOp reduce) {
  if (reduce == ReduceOp::sum) return ncclSum;
  TILLER_CHECK(tensor.dtype() != DType::i32, "{}: an average needs f32 or bf16, got i32", op);
  return ncclAvg;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<MpiCommunicator> bootstrap, Device device)
      : bootstrap_(std::move(bootstrap)), device_(device) {
    TILLER_CHECK(device.is_cuda(), "dist (NCCL): needs a cuda device, got {}", device.str());
    TILLER_NCCL_CUDA_CHECK(cudaSetDevice(device.index));
    ncclUniqueId id{};
    if (bootstrap_->rank() == 0) TILLER_NCCL_CHECK(ncclGetUniqueId(&id));
    bootstrap_->broadcast_bytes(&id, sizeof(id), 0);
    TILLER_NCCL_CHECK(ncclCommInitRank(&comm_, bootstrap_->world_size(), id, bootstrap_->rank()));
    TILLER_NCCL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    TILLER_NCCL_CUDA_CHECK(cudaEventCreateWithFlags(&inputs_ready_, cudaEventDisableTiming));
    TILLER_NCCL_CUDA_CHECK(cudaEventCreateWithFlags(&outputs_ready_, cudaEventDisableTiming));
  }
  ~NcclCommunicator() override {
    // Errors are ignored here: a destructor never throws, and the process is ending anyway.
    cudaEventDestroy(inputs_ready_);
    cudaEventDestroy(outputs_ready_);
    cudaStreamDestroy(stream_);
    ncclCommDestroy(comm_);
  }

  int rank() const override { return bootstrap_->rank(); }
  int world_size() const override { return bootstrap_->world_size(); }
  const char* backend() const override { return "nccl"; }
  Device device() const override { return device_; }

  void all_reduce(const Tensor& tensor, ReduceOp op) override {
    check_collective_tensor("all_reduce", tensor, device_);
    enqueue([&] {
      TILLER_NCCL_CHECK(ncclAllReduce(
          tensor.data_ptr(), tensor.data_ptr(), static_cast<size_t>(tensor.numel()),
          nccl_type(tensor.dtype()), nccl_op("all_reduce", tensor, op), comm_, stream_));
    });
  }
  void reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) override {
    check_scatter_gather("reduce_scatter", input, output, world_size(), device_);
    enqueue([&] {
      TILLER_NCCL_CHECK(ncclReduceScatter(
          input.data_ptr(), output.data_ptr(), static_cast<size_t>(output.numel()),
          nccl_type(input.dtype()), nccl_op("reduce_scatter", input, op), comm_, stream_));
    });
  }
  void all_gather(const Tensor& input, const Tensor& output) override {
    check_scatter_gather("all_gather", output, input, world_size(), device_);
    enqueue([&] {
      TILLER_NCCL_CHECK(ncclAllGather(input.data_ptr(), output.data_ptr(),
                                      static_cast<size_t>(input.numel()), nccl_type(input.dtype()),
                                      comm_, stream_));
    });
  }
  void broadcast(const Tensor& tensor, int root) override {
    check_collective_tensor("broadcast", tensor, device_);
    TILLER_CHECK(root >= 0 && root < world_size(), "broadcast: root {} is not a rank of {}", root,
                 world_size());
    enqueue([&] {
      TILLER_NCCL_CHECK(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(),
                                      static_cast<size_t>(tensor.numel()),
                                      nccl_type(tensor.dtype()), root, comm_, stream_));
    });
  }
  // Host barrier: the queued device work first (it may still be reading buffers), then MPI.
  void barrier() override {
    TILLER_NCCL_CUDA_CHECK(cudaStreamSynchronize(stream_));
    bootstrap_->barrier();
  }

 private:
  // compute stream -> NCCL stream -> compute stream, ordered by events (no host wait).
  template <typename Launch>
  void enqueue(Launch launch) {
    TILLER_NCCL_CUDA_CHECK(cudaSetDevice(device_.index));
    TILLER_NCCL_CUDA_CHECK(cudaEventRecord(inputs_ready_, cudaStreamLegacy));
    TILLER_NCCL_CUDA_CHECK(cudaStreamWaitEvent(stream_, inputs_ready_, 0));
    launch();
    TILLER_NCCL_CUDA_CHECK(cudaEventRecord(outputs_ready_, stream_));
    TILLER_NCCL_CUDA_CHECK(cudaStreamWaitEvent(cudaStreamLegacy, outputs_ready_, 0));
  }

  std::shared_ptr<MpiCommunicator> bootstrap_;
  Device device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t inputs_ready_ = nullptr;
  cudaEvent_t outputs_ready_ = nullptr;
};

}  // namespace

std::shared_ptr<Communicator> nccl_world(Device device) {
  return std::make_shared<NcclCommunicator>(MpiCommunicator::world(), device);
}

}  // namespace tiller::dist
