// One warp per query row. The warp walks the row 32 columns at a time (lane l reads column j0 + l, so a warp
// reads 32 consecutive entries of the query-major tile) and brackets every pair in parallel; the rare pairs
// whose lower bound is <= tau are then visited one by one in column order by lane 0, which owns the row's
// RowScan (the same per-pair logic as the CPU), and tau is broadcast back to the warp.
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "common/warp.cuh"
#include "neighbors/nearest_scan.h"

namespace wmf {

namespace {

constexpr int kThreads = 128;
constexpr unsigned kFullMask = 0xffffffffu;

template <class G>
__global__ void nearest_scan_kernel(ConstMat<G> gram, RowNorms query, RowNorms ref, GramErrorModel model,
                                    const int64_t* q_index, int64_t r_offset, bool exclude_self,
                                    CandidateState state) {
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (i >= gram.rows) return;  // whole warps exit together: rows are per warp
  RowScan scan(state, i);
  const RowTerm q = query.term(i);
  const int64_t self_col = exclude_self ? q_index[i] - r_offset : -1;
  for (int64_t j0 = 0; j0 < gram.cols; j0 += kWarp) {
    const int64_t j = j0 + lane;
    SqdistBracket b{0.0, 0.0, 0.0};
    bool near = false;
    if (j < gram.cols && j != self_col) {
      b = bracket_sqdist(static_cast<double>(gram(i, j)), q, ref.term(j), model);
      near = b.lo <= scan.tau;
    }
    unsigned pending = __ballot_sync(kFullMask, near);
    while (pending != 0) {
      const int src = __ffs(pending) - 1;
      const SqdistBracket visit{__shfl_sync(kFullMask, b.estimate, src), __shfl_sync(kFullMask, b.lo, src),
                                __shfl_sync(kFullMask, b.hi, src)};
      if (lane == 0) scan.visit(visit, r_offset + j0 + src);
      scan.tau = __shfl_sync(kFullMask, scan.tau, 0);
      pending &= pending - 1;
    }
  }
  if (lane == 0) scan.store(state, i);
}

}  // namespace

template <class G>
void nearest_scan_cuda(ConstMat<G> gram, RowNorms query, RowNorms ref, GramErrorModel model, const int64_t* q_index,
                       int64_t r_offset, bool exclude_self, CandidateState state, CudaCtx ctx) {
  WMF_CHECK(state.k >= 1 && state.capacity >= state.k, "need 1 <= k <= capacity");
  DeviceGuard guard(ctx.device);
  nearest_scan_kernel<G><<<blocks_for(gram.rows * kWarp, kThreads), kThreads, 0, stream_of(ctx)>>>(
      gram, query, ref, model, q_index, r_offset, exclude_self, state);
  WMF_CUDA_CHECK_LAUNCH();
}

template void nearest_scan_cuda<float>(ConstMat<float>, RowNorms, RowNorms, GramErrorModel, const int64_t*, int64_t,
                                       bool, CandidateState, CudaCtx);
template void nearest_scan_cuda<double>(ConstMat<double>, RowNorms, RowNorms, GramErrorModel, const int64_t*,
                                        int64_t, bool, CandidateState, CudaCtx);

}  // namespace wmf
