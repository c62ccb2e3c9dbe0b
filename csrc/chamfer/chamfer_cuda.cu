// CUDA Chamfer matrix: one block of kThreads threads per pair (grid-stride over pairs, so any N x M fits one
// launch). Simple on purpose, the two directions are two passes of the same routine: with own = a and other = b,
// then own = b and other = a, every thread keeps kPerThread own points and their running minima in registers while
// the block stages the other cloud through shared memory kTile points at a time (every thread reads the same
// staged point: a broadcast, no bank conflicts). The block then adds f(minimum) over the own points in float64:
// each thread over its points in order, warp_sum, then thread 0 over the warps in order; a fixed order, so the
// result does not vary from run to run. Costs 2 x P x Q distances per pair (the CPU kernel shares one tile for
// both directions; here the simplicity is worth more). Resources: 256 threads, 3 KB of shared memory for float
// (6 KB for double), and a kPerThread x 4 register block.
//
// Every branch that surrounds a __syncthreads() depends only on the pair and the cloud sizes, never on the
// thread, so all threads of a block reach the same barriers.
#include <algorithm>
#include <cmath>

#include "chamfer/chamfer.h"
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "common/warp.cuh"

namespace wmf {

namespace {

constexpr int kThreads = 256;
constexpr int kPerThread = 8;  // kThreads * kPerThread = 2048: the study's clouds take one sweep per direction
constexpr int kTile = 256;
constexpr int64_t kMaxBlocks = 1 << 20;

// The contract's formula (chamfer.h), roundings spelled out so nvcc cannot contract them into FMAs.
__device__ __forceinline__ float sq_dist3(float dx, float dy, float dz) {
  return __fadd_rn(__fadd_rn(__fmul_rn(dx, dx), __fmul_rn(dy, dy)), __fmul_rn(dz, dz));
}
__device__ __forceinline__ double sq_dist3(double dx, double dy, double dz) {
  return __dadd_rn(__dadd_rn(__dmul_rn(dx, dx), __dmul_rn(dy, dy)), __dmul_rn(dz, dz));
}

template <class T>
struct PointTile {
  T x[kTile];
  T y[kTile];
  T z[kTile];
};

// This thread's share (own points threadIdx.x + k * kThreads) of sum_i f(min_j sq_dist3(other_j - own_i)).
// Every thread of the block calls it with the same arguments: it synchronises.
template <class T>
__device__ double direction_sum(const T* own, int64_t n_own, const T* other, int64_t n_other, bool squared,
                                PointTile<T>& tile) {
  const T inf = static_cast<T>(INFINITY);
  double sum = 0.0;
  for (int64_t base = 0; base < n_own; base += static_cast<int64_t>(kThreads) * kPerThread) {
    T px[kPerThread], py[kPerThread], pz[kPerThread], best[kPerThread];
#pragma unroll
    for (int r = 0; r < kPerThread; ++r) {
      const int64_t i = base + static_cast<int64_t>(r) * kThreads + threadIdx.x;
      const bool valid = i < n_own;  // an invalid slot computes harmless distances to 0 and is not summed
      px[r] = valid ? own[3 * i] : T(0);
      py[r] = valid ? own[3 * i + 1] : T(0);
      pz[r] = valid ? own[3 * i + 2] : T(0);
      best[r] = inf;
    }
    for (int64_t t0 = 0; t0 < n_other; t0 += kTile) {
      const int count = static_cast<int>(n_other - t0 < kTile ? n_other - t0 : kTile);
      __syncthreads();  // every thread is done with the previous tile
      for (int s = threadIdx.x; s < count; s += kThreads) {
        const T* q = other + 3 * (t0 + s);
        tile.x[s] = q[0];
        tile.y[s] = q[1];
        tile.z[s] = q[2];
      }
      __syncthreads();
      for (int s = 0; s < count; ++s) {
        const T qx = tile.x[s], qy = tile.y[s], qz = tile.z[s];
#pragma unroll
        for (int r = 0; r < kPerThread; ++r) {
          const T d = sq_dist3(qx - px[r], qy - py[r], qz - pz[r]);
          best[r] = d < best[r] ? d : best[r];
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kPerThread; ++r) {
      const int64_t i = base + static_cast<int64_t>(r) * kThreads + threadIdx.x;
      if (i < n_own) sum += squared ? static_cast<double>(best[r]) : sqrt(static_cast<double>(best[r]));
    }
  }
  return sum;
}

// The block's total of v, in thread 0 (other threads get a partial value). Synchronises; reusable at once.
__device__ double block_sum(double v, double* warp_sums) {
  v = warp_sum(v);
  if (threadIdx.x % kWarp == 0) warp_sums[threadIdx.x / kWarp] = v;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < kThreads / kWarp; ++w) total += warp_sums[w];
  }
  __syncthreads();  // warp_sums is free again
  return total;
}

// Blocks per SM the register budget must allow: float needs ~60 registers and, left alone, ptxas picks 48 and
// spills; double needs ~120 and spills when held to 64.
template <class T>
constexpr int kMinBlocks = sizeof(T) == 4 ? 4 : 1;

template <class T>
__global__ void __launch_bounds__(kThreads, kMinBlocks<T>)
    chamfer_matrix_kernel(CloudBatch<T> a, CloudBatch<T> b, bool squared, bool symmetric, Mat<T> out) {
  __shared__ PointTile<T> tile;
  __shared__ double warp_sums[kThreads / kWarp];
  const int64_t pairs = a.count * b.count;
  for (int64_t p = blockIdx.x; p < pairs; p += gridDim.x) {
    const int64_t n = p / b.count;
    const int64_t m = p % b.count;
    if (symmetric && m <= n) {  // the same for the whole block
      if (m == n && threadIdx.x == 0) out(n, n) = T(0);
      continue;
    }
    const T* cloud_a = a.cloud(n);
    const T* cloud_b = b.cloud(m);
    const double rows = block_sum(direction_sum(cloud_a, a.points, cloud_b, b.points, squared, tile), warp_sums);
    const double cols = block_sum(direction_sum(cloud_b, b.points, cloud_a, a.points, squared, tile), warp_sums);
    if (threadIdx.x == 0) {
      const T value = static_cast<T>(rows / static_cast<double>(a.points) + cols / static_cast<double>(b.points));
      out(n, m) = value;
      if (symmetric) out(m, n) = value;
    }
  }
}

}  // namespace

template <class T>
void chamfer_matrix_cuda(CloudBatch<T> a, CloudBatch<T> b, bool squared, bool symmetric, Mat<T> out, CudaCtx ctx) {
  WMF_CHECK(a.points >= 1 && b.points >= 1, "clouds must have at least one point");
  WMF_CHECK(out.rows == a.count && out.cols == b.count, "out must be [N, M]");
  WMF_CHECK(!symmetric || (a.data == b.data && a.count == b.count && a.points == b.points),
            "symmetric mode needs the same batch twice");
  const int64_t pairs = a.count * b.count;
  if (pairs == 0) return;
  DeviceGuard guard(ctx.device);
  const int blocks = static_cast<int>(std::min(pairs, kMaxBlocks));
  chamfer_matrix_kernel<T><<<blocks, kThreads, 0, stream_of(ctx)>>>(a, b, squared, symmetric, out);
  WMF_CUDA_CHECK_LAUNCH();
}

template void chamfer_matrix_cuda<float>(CloudBatch<float>, CloudBatch<float>, bool, bool, Mat<float>, CudaCtx);
template void chamfer_matrix_cuda<double>(CloudBatch<double>, CloudBatch<double>, bool, bool, Mat<double>,
                                          CudaCtx);

}  // namespace wmf
