// Tiled like a GEMM: a 16 x 16 block computes a 16 x 16 tile of out; word chunks of 16 columns of a and b are
// staged in shared memory (2 x 2 KB), and each thread accumulates popc(a & b) over them. Integer counts, so the
// result does not depend on the order.
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "iou/bitmask.h"
#include "iou/iou_matrix.h"

namespace wmf {

namespace {

constexpr int kTile = 16;

__global__ void iou_matrix_kernel(ConstMat<int64_t> a, const int64_t* count_a, ConstMat<int64_t> b,
                                  const int64_t* count_b, Mat<float> out) {
  __shared__ uint64_t a_tile[kTile][kTile + 1];
  __shared__ uint64_t b_tile[kTile][kTile + 1];
  const int64_t i = static_cast<int64_t>(blockIdx.y) * kTile + threadIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;
  const int64_t b_row = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.y;
  int64_t inter = 0;
  for (int64_t w0 = 0; w0 < a.cols; w0 += kTile) {
    const int64_t w = w0 + threadIdx.x;
    a_tile[threadIdx.y][threadIdx.x] = (i < a.rows && w < a.cols) ? static_cast<uint64_t>(a(i, w)) : 0;
    b_tile[threadIdx.y][threadIdx.x] = (b_row < b.rows && w < b.cols) ? static_cast<uint64_t>(b(b_row, w)) : 0;
    __syncthreads();
#pragma unroll
    for (int t = 0; t < kTile; ++t) inter += popcount64(a_tile[threadIdx.y][t] & b_tile[threadIdx.x][t]);
    __syncthreads();
  }
  if (i < a.rows && j < b.rows) out(i, j) = iou_value(iou_count(inter, count_a[i], count_b[j]));
}

}  // namespace

void iou_matrix_cuda(ConstMat<int64_t> a, const int64_t* count_a, ConstMat<int64_t> b, const int64_t* count_b,
                     Mat<float> out, CudaCtx ctx) {
  WMF_CHECK(a.cols == b.cols, "word counts differ: ", a.cols, " vs ", b.cols);
  WMF_CHECK(out.rows == a.rows && out.cols == b.rows, "out must be [N, M]");
  WMF_CHECK(a.rows <= 65535LL * kTile, "too many query rows for one launch: ", a.rows);
  if (a.rows == 0 || b.rows == 0) return;
  DeviceGuard guard(ctx.device);
  const dim3 threads(kTile, kTile);
  const dim3 blocks(blocks_for(b.rows, kTile), blocks_for(a.rows, kTile));
  iou_matrix_kernel<<<blocks, threads, 0, stream_of(ctx)>>>(a, count_a, b, count_b, out);
  WMF_CUDA_CHECK_LAUNCH();
}

}  // namespace wmf
