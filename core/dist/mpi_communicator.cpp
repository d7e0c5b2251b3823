// The MPI communicator (see mpi_communicator.h).
#include "core/dist/mpi_communicator.h"

#include <mpi.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "core/dist/tensor_checks.h"
#include "kernels/error.h"

namespace tiller::dist {

namespace {

// Set when a collective failed or timed out: finalising would then wait for a peer that is gone.
std::atomic<bool> g_collective_failed{false};

[[noreturn]] void throw_mpi(int status, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  g_collective_failed = true;
  fail("MPI error {} ({}) in {} at {}:{}", status, std::string(text, static_cast<size_t>(length)),
       call, file, line);
}

#define TILLER_MPI_CHECK(call)                                                               \
  do {                                                                                       \
    int tiller_status_ = (call);                                                             \
    if (tiller_status_ != MPI_SUCCESS) throw_mpi(tiller_status_, #call, __FILE__, __LINE__); \
  } while (0)

// Initialises MPI on first use and finalises (or aborts, after a failure) at process exit.
struct MpiRuntime {
  MpiRuntime() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    TILLER_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    owns = true;
  }
  ~MpiRuntime() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!owns || finalized) return;
    if (g_collective_failed) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
  }
  bool owns = false;
};

MpiRuntime& runtime() {
  static MpiRuntime instance;
  return instance;
}

MPI_Datatype mpi_type(const char* op, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::i32:
      return MPI_INT;
    case DType::bf16:
      break;
  }
  fail(
      "{}: the MPI communicator takes f32 or i32 CPU tensors, got {} (bf16 lives on CUDA, "
      "where NCCL communicates it)",
      op, dtype_name(dtype));
}

void scale_in_place(const char* op, const Tensor& tensor, int world_size) {
  TILLER_CHECK(tensor.dtype() == DType::f32, "{}: an average needs f32, got {}", op,
               dtype_name(tensor.dtype()));
  const float inverse = 1.f / static_cast<float>(world_size);
  float* data = tensor.data<float>();
  const int64_t n = tensor.numel();
  for (int64_t i = 0; i < n; ++i) data[i] *= inverse;
}

double timeout_from_environment() {
  const char* text = std::getenv("TILLER_DIST_TIMEOUT");
  if (text == nullptr || *text == '\0') return 300.0;
  char* end = nullptr;
  double seconds = std::strtod(text, &end);
  TILLER_CHECK(*end == '\0' && seconds > 0.0,
               "dist: TILLER_DIST_TIMEOUT='{}' must be a positive number of seconds", text);
  return seconds;
}

}  // namespace

struct MpiCommunicator::Handle {
  MPI_Comm comm = MPI_COMM_NULL;

  // Polls `request` until done; past the deadline, a named error (the peer is dead or stuck).
  // `seconds` accumulates the time from the call to completion.
  void wait(MPI_Request& request, const char* op, std::chrono::duration<double> timeout, int rank,
            double& seconds) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + timeout;
    for (uint64_t polls = 0;; ++polls) {
      int done = 0;
      TILLER_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
      if (done) {
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return;
      }
      if (polls % 1024 == 1023) {
        if (std::chrono::steady_clock::now() > deadline) {
          g_collective_failed = true;
          fail(
              "dist (MPI): rank {} waited {} s in {} for the other ranks; one of them died or "
              "hangs (TILLER_DIST_TIMEOUT sets the limit)",
              rank, timeout.count(), op);
        }
        std::this_thread::yield();
      }
    }
  }
};

std::shared_ptr<MpiCommunicator> MpiCommunicator::world() {
  runtime();
  return std::shared_ptr<MpiCommunicator>(new MpiCommunicator());
}

MpiCommunicator::MpiCommunicator()
    : handle_(std::make_unique<Handle>()), timeout_(timeout_from_environment()) {
  TILLER_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &handle_->comm));
  TILLER_MPI_CHECK(MPI_Comm_set_errhandler(handle_->comm, MPI_ERRORS_RETURN));
  TILLER_MPI_CHECK(MPI_Comm_rank(handle_->comm, &rank_));
  TILLER_MPI_CHECK(MPI_Comm_size(handle_->comm, &world_size_));
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  // Freeing is collective-free in MPI but would touch a dead peer's state after a failure.
  if (!finalized && !g_collective_failed && handle_->comm != MPI_COMM_NULL)
    MPI_Comm_free(&handle_->comm);
}

void MpiCommunicator::all_reduce(const Tensor& tensor, ReduceOp op) {
  check_collective_tensor("all_reduce", tensor, device());
  MPI_Request request;
  TILLER_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, tensor.data_ptr(), static_cast<int>(tensor.numel()),
                                  mpi_type("all_reduce", tensor.dtype()), MPI_SUM, handle_->comm,
                                  &request));
  handle_->wait(request, "all_reduce", timeout_, rank_, collective_seconds_);
  if (op == ReduceOp::average) scale_in_place("all_reduce", tensor, world_size_);
}

void MpiCommunicator::reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) {
  check_scatter_gather("reduce_scatter", input, output, world_size_, device());
  TILLER_CHECK(!input.same(output), "reduce_scatter: input and output must be different tensors");
  MPI_Request request;
  TILLER_MPI_CHECK(MPI_Ireduce_scatter_block(
      input.data_ptr(), output.data_ptr(), static_cast<int>(output.numel()),
      mpi_type("reduce_scatter", input.dtype()), MPI_SUM, handle_->comm, &request));
  handle_->wait(request, "reduce_scatter", timeout_, rank_, collective_seconds_);
  if (op == ReduceOp::average) scale_in_place("reduce_scatter", output, world_size_);
}

void MpiCommunicator::all_gather(const Tensor& input, const Tensor& output) {
  check_scatter_gather("all_gather", output, input, world_size_, device());
  TILLER_CHECK(!input.same(output), "all_gather: input and output must be different tensors");
  const MPI_Datatype type = mpi_type("all_gather", input.dtype());
  const int n = static_cast<int>(input.numel());
  MPI_Request request;
  TILLER_MPI_CHECK(MPI_Iallgather(input.data_ptr(), n, type, output.data_ptr(), n, type,
                                  handle_->comm, &request));
  handle_->wait(request, "all_gather", timeout_, rank_, collective_seconds_);
}

void MpiCommunicator::broadcast(const Tensor& tensor, int root) {
  check_collective_tensor("broadcast", tensor, device());
  TILLER_CHECK(root >= 0 && root < world_size_, "broadcast: root {} is not a rank of {}", root,
               world_size_);
  MPI_Request request;
  TILLER_MPI_CHECK(MPI_Ibcast(tensor.data_ptr(), static_cast<int>(tensor.numel()),
                              mpi_type("broadcast", tensor.dtype()), root, handle_->comm,
                              &request));
  handle_->wait(request, "broadcast", timeout_, rank_, collective_seconds_);
}

void MpiCommunicator::broadcast_bytes(void* data, size_t bytes, int root) {
  MPI_Request request;
  TILLER_MPI_CHECK(
      MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, handle_->comm, &request));
  handle_->wait(request, "broadcast", timeout_, rank_, collective_seconds_);
}

void MpiCommunicator::barrier() {
  MPI_Request request;
  TILLER_MPI_CHECK(MPI_Ibarrier(handle_->comm, &request));
  handle_->wait(request, "barrier", timeout_, rank_, collective_seconds_);
}

std::shared_ptr<Communicator> mpi_world() {
  return MpiCommunicator::world();
}

void abort_job(int exit_code) {
  int initialized = 0, finalized = 0, size = 1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

}  // namespace tiller::dist
