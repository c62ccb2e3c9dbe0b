// CUDA batched linear assignment: one thread per problem (grid-stride, so any count fits one launch), running the
// same lap_solve as the CPU (lap.h). A 10 x 10 problem is ~1e3 dependent scalar steps, so one thread per problem
// with many problems in flight is the right grain (a warp per problem would idle most lanes at n = 10).
// Scratch: for n <= kLapLocalMaxN the work arrays are per-thread local arrays sized for kLapLocalMaxN
// (lap_work_bytes(32) = 1.3 KB; local memory is cached in L1/L2); for larger n each thread uses its own slot of
// the `scratch` byte tensor Python allocates, and the grid is capped at the number of slots. Costs are read
// straight from global memory (each thread walks its own matrix; L1/L2 absorb the reuse). Simple on purpose.
#include <algorithm>
#include <cstdint>

#include "assign/lap.h"
#include "common/check.h"
#include "common/cuda_check.cuh"

namespace wmf {

namespace {

constexpr int kThreads = 128;
constexpr int64_t kMaxBlocks = 1 << 16;

// Local-memory work arrays for n <= kLapLocalMaxN, as doubles so that they are 8-byte aligned.
constexpr int64_t kLocalWords = (3 * 8 * kLapLocalMaxN + 4 * 4 * kLapLocalMaxN + 7) / 8;

template <class T>
__global__ void __launch_bounds__(kThreads)
    linear_assignment_local_kernel(CostBatch<T> costs, Mat<int64_t> perm, Vec<double> total) {
  double words[kLocalWords];
  const int32_t n = static_cast<int32_t>(costs.n);
  const LapWork work = lap_work_at(reinterpret_cast<unsigned char*>(words), n);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < costs.count; b += stride) {
    total[b] = lap_solve(costs.problem(b), n, work, perm.data + b * perm.row_stride);
  }
}

// slots threads in all (the launch guarantees it), thread t using bytes [t * slot_bytes, (t + 1) * slot_bytes).
template <class T>
__global__ void __launch_bounds__(kThreads)
    linear_assignment_global_kernel(CostBatch<T> costs, Mat<int64_t> perm, Vec<double> total,
                                    unsigned char* scratch, int64_t slot_bytes, int64_t slots) {
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (thread >= slots) return;
  const int32_t n = static_cast<int32_t>(costs.n);
  const LapWork work = lap_work_at(scratch + thread * slot_bytes, n);
  for (int64_t b = thread; b < costs.count; b += slots) {
    total[b] = lap_solve(costs.problem(b), n, work, perm.data + b * perm.row_stride);
  }
}

}  // namespace

template <class T>
void linear_assignment_cuda(CostBatch<T> costs, Mat<int64_t> perm, Vec<double> total, unsigned char* scratch,
                            int64_t scratch_bytes, CudaCtx ctx) {
  WMF_CHECK(costs.n >= 1 && costs.n <= INT32_MAX / 4, "problems must have 1 <= n < 2^29 rows, got ", costs.n);
  WMF_CHECK(costs.count >= 0, "negative problem count");
  WMF_CHECK(perm.rows == costs.count && perm.cols == costs.n && perm.col_stride == 1, "perm must be [B, n]");
  WMF_CHECK(total.size == costs.count, "total must be [B]");
  if (costs.count == 0) return;
  DeviceGuard guard(ctx.device);
  if (costs.n <= kLapLocalMaxN) {
    const int blocks = static_cast<int>(std::min<int64_t>(blocks_for(costs.count, kThreads), kMaxBlocks));
    linear_assignment_local_kernel<T><<<blocks, kThreads, 0, stream_of(ctx)>>>(costs, perm, total);
  } else {
    const int64_t slot_bytes = lap_work_bytes(costs.n);
    WMF_CHECK(scratch != nullptr && scratch_bytes >= slot_bytes && scratch_bytes % slot_bytes == 0,
              "scratch must hold a whole number (>= 1) of lap_work_bytes(n) = ", slot_bytes, " byte slots for n = ",
              costs.n, ", got ", scratch_bytes, " bytes");
    WMF_CHECK(reinterpret_cast<std::uintptr_t>(scratch) % 8 == 0, "scratch must be 8-byte aligned");
    const int64_t slots = std::min(scratch_bytes / slot_bytes, costs.count);
    const int blocks = static_cast<int>(std::min<int64_t>(blocks_for(slots, kThreads), kMaxBlocks));
    const int64_t used = std::min<int64_t>(slots, static_cast<int64_t>(blocks) * kThreads);
    linear_assignment_global_kernel<T><<<blocks, kThreads, 0, stream_of(ctx)>>>(costs, perm, total, scratch,
                                                                                  slot_bytes, used);
  }
  WMF_CUDA_CHECK_LAUNCH();
}

template void linear_assignment_cuda<float>(CostBatch<float>, Mat<int64_t>, Vec<double>, unsigned char*, int64_t,
                                            CudaCtx);
template void linear_assignment_cuda<double>(CostBatch<double>, Mat<int64_t>, Vec<double>, unsigned char*, int64_t,
                                             CudaCtx);

}  // namespace wmf
