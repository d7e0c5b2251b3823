// Communicator: the collectives data-parallel training needs, over the ranks of one job.
//
// Three implementations, picked by communicator_from_environment():
//   single process  every collective is a no-op (a copy where input and output differ);
//   MPI             CPU tensors (core/dist/mpi_communicator.cpp); MPI has no average, so
//                   average = sum, then scale by 1 / world_size;
//   NCCL            CUDA tensors (core/dist/nccl_communicator.cpp); bootstrapped by broadcasting
//                   the ncclUniqueId over MPI; runs on its own stream, ordered after the work
//                   already queued on the compute stream and before any work queued after it.
// MPI launches the processes (mpirun -np N); tiller never opens sockets of its own.
//
// Invariants every caller keeps: all ranks call the same collectives in the same order with the
// same shapes and dtypes (a mismatch is a hang or an error from the engine, never detected
// beforehand), and tensors are contiguous. Results are identical on every rank (each engine
// reduces once and distributes the result), which is what lets all ranks take the same decisions
// (clip factor, non-finite step) without a further vote. A collective that does not complete
// within the communicator's timeout (TILLER_DIST_TIMEOUT seconds, default 300; a peer died or
// hangs) throws tiller::Error naming the collective instead of hanging.
#pragma once

#include <memory>
#include <string>

#include "core/tensor/tensor.h"

namespace tiller::dist {

enum class ReduceOp { sum, average };

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const char* backend() const = 0;  // "single", "mpi" or "nccl"
  // Where tensors must live: cpu for single and MPI, cuda:N for NCCL.
  virtual Device device() const = 0;

  // In place: `tensor` becomes the sum (or mean) over ranks of every rank's `tensor`.
  virtual void all_reduce(const Tensor& tensor, ReduceOp op) = 0;
  // input holds world_size * n elements, output n: output = chunk `rank` of the reduction.
  virtual void reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) = 0;
  // input holds n elements, output world_size * n: chunk r of output = rank r's input.
  virtual void all_gather(const Tensor& input, const Tensor& output) = 0;
  // In place: every rank's `tensor` becomes root's.
  virtual void broadcast(const Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;

  // A host value reduced over ranks (one tiny collective; the value crosses to the host).
  double all_reduce_value(double value, ReduceOp op);
  bool is_leader() const { return rank() == 0; }

  // Wall time this process has spent inside collectives so far (MPI: issue to completion,
  // including waiting for slower ranks; NCCL: only the host's enqueueing, the device work is
  // asynchronous). For the benchmark's communication time per step.
  double collective_seconds() const { return collective_seconds_; }

 protected:
  double collective_seconds_ = 0.0;
};

// Where this process sits in the job, from the launcher's environment (Open MPI's
// OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK}, or PMI_RANK / PMI_SIZE / MPI_LOCALRANKID under MPICH
// and Slurm). Without a launcher: rank 0 of 1.
struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // rank among the processes of this machine: picks the GPU
  bool launched = false;
};
LaunchInfo launch_info_from_environment();

bool mpi_built();   // configured with MPI (TILLER_MPI)
bool nccl_built();  // configured with NCCL (TILLER_NCCL)

std::shared_ptr<Communicator> single_process(Device device = Device::cpu());
// The MPI world (initialises MPI once per process; finalised at exit). Throws without MPI.
std::shared_ptr<Communicator> mpi_world();
// NCCL over the MPI world's ranks on `device` (cuda:N). Throws without NCCL.
std::shared_ptr<Communicator> nccl_world(Device device);

// The communicator for tensors on `device` in this process: single process when no launcher
// started more than one; else MPI for cpu and NCCL for cuda. Errors name what is missing (a build
// without MPI launched by mpirun -np 2, cuda without NCCL).
std::shared_ptr<Communicator> communicator_from_environment(Device device);

// Ends the job: MPI_Abort when MPI runs with more than one rank (mpirun then stops every rank),
// else nothing. For a program's top-level error handler, after printing the error, so that one
// rank's failure never leaves the others waiting in a collective.
void abort_job(int exit_code);

// `device` with the GPU of this rank: "cuda" (index 0) becomes cuda:local_rank under a launcher.
Device device_for_rank(Device device, const LaunchInfo& launch);

}  // namespace tiller::dist
