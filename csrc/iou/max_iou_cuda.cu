// One warp per query row. The warp takes 32 reference rows at a time (lane l scores row j0 + l, reading its words
// sequentially; the query row is re-read by every lane from L1). Lanes whose IoU beats the current K-th best
// are then inserted one by one in lane order, i.e. increasing index, by lane 0, which owns the row's top-K in
// global memory; the K-th best is broadcast back. Ties therefore keep the lowest index, as on the CPU.
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "common/warp.cuh"
#include "iou/bitmask.h"
#include "iou/max_iou.h"

namespace wmf {

namespace {

constexpr int kThreads = 128;
constexpr unsigned kFullMask = 0xffffffffu;

__global__ void max_iou_kernel(ConstMat<int64_t> query, const int64_t* count_q, ConstMat<int64_t> reference,
                               const int64_t* count_r, bool exclude_self, IouTopK top) {
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (i >= query.rows) return;  // whole warps exit together
  const int64_t k = top.out_index.cols;
  int64_t* inter = &top.top_inter(i, 0);
  int64_t* uni = &top.top_union(i, 0);
  int64_t* index = &top.out_index(i, 0);
  int64_t filled = 0;  // identical in every lane: broadcast after each insertion
  IouCount kth{0, 0};  // the K-th best so far, meaningful once filled == k
  const int64_t* q = query.row(i);
  for (int64_t j0 = 0; j0 < reference.rows; j0 += kWarp) {
    const int64_t j = j0 + lane;
    IouCount c{0, 0};
    bool better = false;
    if (j < reference.rows && !(exclude_self && j == i)) {
      const int64_t* r = reference.row(j);
      int64_t n = 0;
      for (int64_t w = 0; w < query.cols; ++w) n += popcount64(static_cast<uint64_t>(q[w]) & static_cast<uint64_t>(r[w]));
      c = iou_count(n, count_q[i], count_r[j]);
      better = filled < k || iou_greater(c, kth);
    }
    unsigned pending = __ballot_sync(kFullMask, better);
    while (pending != 0) {
      const int src = __ffs(pending) - 1;
      const IouCount cand{__shfl_sync(kFullMask, c.inter, src), __shfl_sync(kFullMask, c.uni, src)};
      if (lane == 0) filled = topk_insert_iou(inter, uni, index, filled, k, cand, j0 + src);
      filled = __shfl_sync(kFullMask, filled, 0);
      if (lane == 0 && filled == k) kth = IouCount{inter[k - 1], uni[k - 1]};
      kth = IouCount{__shfl_sync(kFullMask, kth.inter, 0), __shfl_sync(kFullMask, kth.uni, 0)};
      pending &= pending - 1;
    }
  }
  if (lane == 0)
    for (int64_t c = 0; c < filled; ++c) top.out_values(i, c) = iou_value(IouCount{inter[c], uni[c]});
}

}  // namespace

void max_iou_cuda(ConstMat<int64_t> query, const int64_t* count_q, ConstMat<int64_t> reference,
                  const int64_t* count_r, bool exclude_self, IouTopK top, CudaCtx ctx) {
  WMF_CHECK(query.cols == reference.cols, "word counts differ: ", query.cols, " vs ", reference.cols);
  WMF_CHECK(top.out_index.cols >= 1, "k must be >= 1");
  if (query.rows == 0) return;
  DeviceGuard guard(ctx.device);
  max_iou_kernel<<<blocks_for(query.rows * kWarp, kThreads), kThreads, 0, stream_of(ctx)>>>(
      query, count_q, reference, count_r, exclude_self, top);
  WMF_CUDA_CHECK_LAUNCH();
}

}  // namespace wmf
