// CUDA error checking and the device guard used by every *_cuda entry point.
#pragma once
#include <cuda_runtime.h>

#include <sstream>
#include <stdexcept>

#include "common/views.h"

#define WMF_CUDA_CHECK(expr)                                                          \
  do {                                                                                \
    cudaError_t wmf_err_ = (expr);                                                    \
    if (wmf_err_ != cudaSuccess) {                                                    \
      std::ostringstream wmf_msg_;                                                    \
      wmf_msg_ << __FILE__ << ":" << __LINE__ << ": " << #expr << " failed: "         \
               << cudaGetErrorString(wmf_err_);                                       \
      throw std::runtime_error(wmf_msg_.str());                                       \
    }                                                                                 \
  } while (0)

// Checks the launch that just happened (configuration errors surface here; faults surface at the next sync).
#define WMF_CUDA_CHECK_LAUNCH() WMF_CUDA_CHECK(cudaGetLastError())

namespace wmf {

// Sets ctx.device for the lifetime of the guard and restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    WMF_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) WMF_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

inline cudaStream_t stream_of(CudaCtx ctx) { return reinterpret_cast<cudaStream_t>(ctx.stream); }

inline int blocks_for(int64_t work, int threads) { return static_cast<int>((work + threads - 1) / threads); }

}  // namespace wmf
