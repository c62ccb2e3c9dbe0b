// One warp per row: lane l sums x[i, l + 32 t]^2 in float64, then a butterfly reduction. Bound by reading x once.
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "common/warp.cuh"
#include "distances/row_sqnorms.h"

namespace wmf {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void row_sqnorms_kernel(ConstMat<T> x, Vec<double> out) {
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
  if (lane == 0) out[row] = acc;
}

}  // namespace

template <class T>
void row_sqnorms_cuda(ConstMat<T> x, Vec<double> out, CudaCtx ctx) {
  WMF_CHECK(x.col_stride == 1, "rows must be contiguous");
  WMF_CHECK(out.size == x.rows, "out has ", out.size, " entries for ", x.rows, " rows");
  DeviceGuard guard(ctx.device);
  row_sqnorms_kernel<T><<<blocks_for(x.rows * kWarp, kThreads), kThreads, 0, stream_of(ctx)>>>(x, out);
  WMF_CUDA_CHECK_LAUNCH();
}

template void row_sqnorms_cuda<float>(ConstMat<float>, Vec<double>, CudaCtx);
template void row_sqnorms_cuda<double>(ConstMat<double>, Vec<double>, CudaCtx);

}  // namespace wmf
