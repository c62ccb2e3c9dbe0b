// One warp per row: lane l sums x[i, l + 32 t]^2 in float64, then a butterfly reduction. Bound by reading x once.
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "common/warp.cuh"
#include "distances/row_norms.h"

namespace wmf {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void row_norms_kernel(ConstMat<T> x, Vec<double> sqnorm, Vec<double> norm, bool require_nonzero,
                                 int* unusable) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= x.rows) return;
  const T* r = x.row(row);
  double acc = 0.0;
  for (int64_t j = lane; j < x.cols; j += kWarp) {
    const double v = static_cast<double>(r[j]);
    acc += v * v;
  }
  acc = warp_sum(acc);
  if (lane == 0) {
    sqnorm[row] = acc;
    norm[row] = sqrt(acc);
    if (unusable != nullptr && unusable_row(acc, require_nonzero)) atomicAdd(unusable, 1);
  }
}

}  // namespace

template <class T>
void row_norms_cuda(ConstMat<T> x, Vec<double> sqnorm, Vec<double> norm, bool require_nonzero, int* unusable,
                    CudaCtx ctx) {
  WMF_CHECK(x.col_stride == 1, "rows must be contiguous");
  WMF_CHECK(sqnorm.size == x.rows && norm.size == x.rows, "outputs need one entry per row");
  DeviceGuard guard(ctx.device);
  row_norms_kernel<T><<<blocks_for(x.rows * kWarp, kThreads), kThreads, 0, stream_of(ctx)>>>(
      x, sqnorm, norm, require_nonzero, unusable);
  WMF_CUDA_CHECK_LAUNCH();
}

template void row_norms_cuda<float>(ConstMat<float>, Vec<double>, Vec<double>, bool, int*, CudaCtx);
template void row_norms_cuda<double>(ConstMat<double>, Vec<double>, Vec<double>, bool, int*, CudaCtx);

}  // namespace wmf
