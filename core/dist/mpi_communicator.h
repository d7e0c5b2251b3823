// The MPI communicator (CPU tensors), exposed for the NCCL bootstrap and for tests; most code
// only sees dist::Communicator. Compiled only when configured with MPI (TILLER_HAS_MPI).
//
// MPI is initialised once per process (MPI_THREAD_FUNNELED: only the main thread calls MPI, OpenMP
// threads never do) and finalised at exit, or aborted (the whole job) when a collective failed,
// since finalising with a peer gone would hang. The communicator works on a duplicate of
// MPI_COMM_WORLD with MPI_ERRORS_RETURN, so an engine error becomes a tiller::Error naming the
// call. Every collective is issued non-blocking and polled against the timeout
// (TILLER_DIST_TIMEOUT seconds, default 300): a dead or stuck peer gives a named error, not a hang.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "core/dist/communicator.h"

namespace tiller::dist {

class MpiCommunicator final : public Communicator {
 public:
  static std::shared_ptr<MpiCommunicator> world();
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  const char* backend() const override { return "mpi"; }
  Device device() const override { return Device::cpu(); }

  void all_reduce(const Tensor& tensor, ReduceOp op) override;
  void reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) override;
  void all_gather(const Tensor& input, const Tensor& output) override;
  void broadcast(const Tensor& tensor, int root) override;
  void barrier() override;

  // Raw bytes from root to every rank (the NCCL bootstrap's ncclUniqueId).
  void broadcast_bytes(void* data, size_t bytes, int root);
  void set_timeout(std::chrono::duration<double> timeout) { timeout_ = timeout; }

 private:
  MpiCommunicator();
  struct Handle;  // the MPI_Comm, kept out of this header so users need no mpi.h
  std::unique_ptr<Handle> handle_;
  int rank_ = 0;
  int world_size_ = 1;
  std::chrono::duration<double> timeout_;
};

}  // namespace tiller::dist
