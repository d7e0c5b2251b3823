// Device-memory entry points for a build without CUDA: no device exists, every use throws.
#include "kernels/error.h"
#include "kernels/memory.h"

namespace tiller::kernels::cuda {

namespace {
[[noreturn]] void unavailable(const char* call) {
  fail("{}: built without CUDA (configure with -DTILLER_CUDA=ON on a machine with nvcc)", call);
}
}  // namespace

bool available() { return false; }
int device_count() { return 0; }
void set_device(int) { unavailable("cuda::set_device"); }
void* allocate(size_t, int) { unavailable("cuda::allocate"); }
void release(void*, int) {}
void copy_host_to_device(void*, const void*, size_t) { unavailable("cuda::copy_host_to_device"); }
void copy_device_to_host(void*, const void*, size_t) { unavailable("cuda::copy_device_to_host"); }
void copy_device_to_device(void*, const void*, size_t) {
  unavailable("cuda::copy_device_to_device");
}
void memset_zero(void*, size_t) { unavailable("cuda::memset_zero"); }
void synchronize() {}
AllocatorStats allocator_stats() { return {}; }
void empty_cache() {}

}  // namespace tiller::kernels::cuda
