// One thread per query row runs scan_columns over the tile, the same per-pair logic as the CPU loop. Python passes the
// tile reference-major (gram[i, j] at j * Qb + i), so the 32 threads of a warp read 32 consecutive floats.
// The scan is cheap next to the GEMM that made the tile (D multiply-adds per element versus ~20 operations).
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "neighbors/nearest_scan.h"

namespace wmf {

namespace {

constexpr int kThreads = 128;

template <class G>
__global__ void nearest_scan_kernel(ConstMat<G> gram, RowNorms query, RowNorms ref, GramErrorModel model,
                                    const int64_t* q_index, int64_t r_offset, bool exclude_self, CandidateState state) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= gram.rows) return;
  RowScan scan(state, i);
  const int64_t self_col = exclude_self ? q_index[i] - r_offset : -1;
  scan_columns(scan, gram, query.term(i), ref, model, i, 0, gram.cols, self_col, r_offset);
  scan.store(state, i);
}

}  // namespace

template <class G>
void nearest_scan_cuda(ConstMat<G> gram, RowNorms query, RowNorms ref, GramErrorModel model, const int64_t* q_index,
                       int64_t r_offset, bool exclude_self, CandidateState state, CudaCtx ctx) {
  WMF_CHECK(state.k >= 1 && state.capacity >= state.k, "need 1 <= k <= capacity");
  DeviceGuard guard(ctx.device);
  nearest_scan_kernel<G><<<blocks_for(gram.rows, kThreads), kThreads, 0, stream_of(ctx)>>>(
      gram, query, ref, model, q_index, r_offset, exclude_self, state);
  WMF_CUDA_CHECK_LAUNCH();
}

template void nearest_scan_cuda<float>(ConstMat<float>, RowNorms, RowNorms, GramErrorModel, const int64_t*, int64_t, bool,
                                       CandidateState, CudaCtx);
template void nearest_scan_cuda<double>(ConstMat<double>, RowNorms, RowNorms, GramErrorModel, const int64_t*, int64_t, bool,
                                        CandidateState, CudaCtx);

}  // namespace wmf
