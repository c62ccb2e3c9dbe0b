// Tiled like iou_matrix_cuda: a 16 x 16 block owns 16 query rows and walks the reference rows 16 at a time. For
// each 16 x 16 tile, word chunks of both sides are staged in shared memory and each thread counts |q & r| for
// its pair; then thread 0 of each query row inserts the tile's candidates that beat the row's K-th best, in
// increasing reference index (so ties keep the lowest index, as on the CPU), into the row's top-K in global
// memory, and publishes the new K-th best in shared memory.
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "iou/bitmask.h"
#include "iou/max_iou.h"

namespace wmf {

namespace {

constexpr int kTile = 16;

__global__ void max_iou_kernel(ConstMat<int64_t> query, const int64_t* count_q, ConstMat<int64_t> reference,
                               const int64_t* count_r, bool exclude_self, IouTopK top) {
  __shared__ uint64_t q_tile[kTile][kTile + 1];
  __shared__ uint64_t r_tile[kTile][kTile + 1];
  __shared__ int64_t cand_inter[kTile][kTile];
  __shared__ int64_t cand_uni[kTile][kTile];
  __shared__ bool cand_ok[kTile][kTile];
  __shared__ int64_t kth_inter[kTile];
  __shared__ int64_t kth_uni[kTile];
  __shared__ int64_t filled[kTile];
  const int ty = threadIdx.y, tx = threadIdx.x;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kTile + ty;  // this thread's query row
  const int64_t k = top.out_index.cols;
  if (tx == 0) filled[ty] = 0;
  __syncthreads();
  for (int64_t r0 = 0; r0 < reference.rows; r0 += kTile) {
    const int64_t j = r0 + tx;             // this thread's reference row
    const int64_t r_load = r0 + ty;        // the reference row this thread stages
    int64_t inter = 0;
    for (int64_t w0 = 0; w0 < query.cols; w0 += kTile) {
      const int64_t w = w0 + tx;
      q_tile[ty][tx] = (i < query.rows && w < query.cols) ? static_cast<uint64_t>(query(i, w)) : 0;
      r_tile[ty][tx] = (r_load < reference.rows && w < reference.cols) ? static_cast<uint64_t>(reference(r_load, w)) : 0;
      __syncthreads();
#pragma unroll
      for (int t = 0; t < kTile; ++t) inter += popcount64(q_tile[ty][t] & r_tile[tx][t]);
      __syncthreads();
    }
    bool ok = i < query.rows && j < reference.rows && !(exclude_self && i == j);
    IouCount c{0, 0};
    if (ok) {
      c = iou_count(inter, count_q[i], count_r[j]);
      ok = filled[ty] < k || iou_greater(c, IouCount{kth_inter[ty], kth_uni[ty]});
    }
    cand_inter[ty][tx] = c.inter;
    cand_uni[ty][tx] = c.uni;
    cand_ok[ty][tx] = ok;
    __syncthreads();
    if (tx == 0 && i < query.rows) {
      int64_t* ti = &top.top_inter(i, 0);
      int64_t* tu = &top.top_union(i, 0);
      int64_t* idx = &top.out_index(i, 0);
      int64_t n = filled[ty];
      for (int t = 0; t < kTile; ++t)
        if (cand_ok[ty][t]) n = topk_insert_iou(ti, tu, idx, n, k, IouCount{cand_inter[ty][t], cand_uni[ty][t]}, r0 + t);
      filled[ty] = n;
      if (n == k) {
        kth_inter[ty] = ti[k - 1];
        kth_uni[ty] = tu[k - 1];
      }
    }
    __syncthreads();
  }
  if (tx == 0 && i < query.rows)
    for (int64_t c = 0; c < filled[ty]; ++c)
      top.out_values(i, c) = iou_value(IouCount{top.top_inter(i, c), top.top_union(i, c)});
}

}  // namespace

void max_iou_cuda(ConstMat<int64_t> query, const int64_t* count_q, ConstMat<int64_t> reference,
                  const int64_t* count_r, bool exclude_self, IouTopK top, CudaCtx ctx) {
  WMF_CHECK(query.cols == reference.cols, "word counts differ: ", query.cols, " vs ", reference.cols);
  WMF_CHECK(top.out_index.cols >= 1, "k must be >= 1");
  if (query.rows == 0) return;
  DeviceGuard guard(ctx.device);
  const dim3 threads(kTile, kTile);
  max_iou_kernel<<<blocks_for(query.rows, kTile), threads, 0, stream_of(ctx)>>>(query, count_q, reference, count_r,
                                                                                 exclude_self, top);
  WMF_CUDA_CHECK_LAUNCH();
}

}  // namespace wmf
