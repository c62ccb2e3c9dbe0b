// Warp-level helpers shared by the CUDA kernels.
#pragma once
#include <cuda_runtime.h>

namespace wmf {

constexpr int kWarp = 32;

// Butterfly sum: every lane ends with the same total, in an order fixed by the lane layout (deterministic).
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

}  // namespace wmf
