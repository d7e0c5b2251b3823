// The single-process communicator, the launcher environment and the factory (see communicator.h).
// The MPI and NCCL communicators live in their own files, compiled only when configured; in a
// build without them mpi_world() / nccl_world() are defined here and throw a named error.
#include "core/dist/communicator.h"

#include <cstdlib>
#include <string>

#include "core/dist/tensor_checks.h"
#include "kernels/error.h"

namespace tiller::dist {

namespace {

class SingleProcess final : public Communicator {
 public:
  explicit SingleProcess(Device device) : device_(device) {}
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  const char* backend() const override { return "single"; }
  Device device() const override { return device_; }

  void all_reduce(const Tensor& tensor, ReduceOp) override {
    check_collective_tensor("all_reduce", tensor, device_);
  }
  void reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp) override {
    check_scatter_gather("reduce_scatter", input, output, 1, device_);
    if (!input.same(output)) output.copy_(input.reshape(output.shape()));
  }
  void all_gather(const Tensor& input, const Tensor& output) override {
    check_scatter_gather("all_gather", output, input, 1, device_);
    if (!input.same(output)) output.copy_(input.reshape(output.shape()));
  }
  void broadcast(const Tensor& tensor, int root) override {
    check_collective_tensor("broadcast", tensor, device_);
    TILLER_CHECK(root == 0, "broadcast: root {} is not a rank of a 1-process world", root);
  }
  void barrier() override {}

 private:
  Device device_;
};

// The first of `names` that is set, as a non-negative integer; -1 when none is.
int environment_integer(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') continue;
    char* end = nullptr;
    long value = std::strtol(text, &end, 10);
    TILLER_CHECK(*end == '\0' && value >= 0 && value < (1L << 24),
                 "dist: environment variable {}='{}' is not a rank or size", name, text);
    return static_cast<int>(value);
  }
  return -1;
}

}  // namespace

double Communicator::all_reduce_value(double value, ReduceOp op) {
  if (world_size() == 1) return value;
  // f64 is not one of tiller's dtypes; two f32 halves would round, so the value travels as f32.
  Tensor box =
      Tensor::full({1}, static_cast<float>(value), {.dtype = DType::f32, .device = device()});
  all_reduce(box, op);
  return box.item();
}

LaunchInfo launch_info_from_environment() {
  LaunchInfo info;
  const int size = environment_integer({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"});
  const int rank = environment_integer({"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"});
  const int local =
      environment_integer({"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"});
  if (size < 0 && rank < 0) return info;
  TILLER_CHECK(size > 0 && rank >= 0 && rank < size,
               "dist: the launcher says rank {} of {} processes; expected 0 <= rank < size", rank,
               size);
  info = {.rank = rank, .world_size = size, .local_rank = local < 0 ? 0 : local, .launched = true};
  return info;
}

bool mpi_built() {
#if defined(TILLER_HAS_MPI)
  return true;
#else
  return false;
#endif
}

bool nccl_built() {
#if defined(TILLER_HAS_NCCL)
  return true;
#else
  return false;
#endif
}

std::shared_ptr<Communicator> single_process(Device device) {
  return std::make_shared<SingleProcess>(device);
}

#if !defined(TILLER_HAS_MPI)
std::shared_ptr<Communicator> mpi_world() {
  fail(
      "dist: tiller was built without MPI (configure with -DTILLER_MPI=ON after "
      "apt-get install libopenmpi-dev openmpi-bin)");
}
void abort_job(int) {}
#endif
#if !defined(TILLER_HAS_NCCL)
std::shared_ptr<Communicator> nccl_world(Device device) {
  fail(
      "dist: tiller was built without NCCL, so {} tensors cannot be communicated (configure "
      "with CUDA, MPI and -DTILLER_NCCL=ON; NCCL from the CUDA toolkit or pip nvidia-nccl-cu12)",
      device.str());
}
#endif

std::shared_ptr<Communicator> communicator_from_environment(Device device) {
  const LaunchInfo launch = launch_info_from_environment();
  if (launch.world_size == 1) return single_process(device);
  TILLER_CHECK(mpi_built(),
               "dist: launched as rank {} of {} processes but tiller was built without MPI "
               "(configure with -DTILLER_MPI=ON after apt-get install libopenmpi-dev openmpi-bin)",
               launch.rank, launch.world_size);
  return device.is_cuda() ? nccl_world(device) : mpi_world();
}

Device device_for_rank(Device device, const LaunchInfo& launch) {
  if (device.is_cuda() && device.index == 0 && launch.world_size > 1)
    return Device::cuda(launch.local_rank);
  return device;
}

}  // namespace tiller::dist
