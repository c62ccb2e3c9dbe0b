// One thread per (sample, model), models fastest: a warp reads 32 consecutive models' hidden segments of one
// sample row. Each thread runs mlp_head_one (the CPU's arithmetic); weights of a model are re-read by every
// sample but stay in L1/L2 (C * H floats per model).
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "eval/mlp_head.h"

namespace wmf {

namespace {

constexpr int kThreads = 128;

__global__ void mlp_head_kernel(MlpHead head, Mat<int64_t> predictions, Mat<float> nll) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= head.models * head.hidden.rows) return;
  const int64_t b = id % head.models;
  const int64_t s = id / head.models;
  predictions(b, s) = mlp_head_one(head, b, s, &nll(b, s));
}

}  // namespace

void mlp_head_cuda(MlpHead head, Mat<int64_t> predictions, Mat<float> nll, CudaCtx ctx) {
  WMF_CHECK(head.width >= 1 && head.width <= kMaxHeadWidth, "hidden width must be in [1, 256]; got ", head.width);
  WMF_CHECK(head.classes >= 1 && head.classes <= kMaxHeadClasses, "classes must be in [1, 256]; got ", head.classes);
  WMF_CHECK(head.hidden.cols == head.models * head.width && head.hidden.col_stride == 1, "hidden must be [S, B * H]");
  WMF_CHECK(predictions.rows == head.models && predictions.cols == head.hidden.rows, "predictions must be [B, S]");
  WMF_CHECK(nll.rows == head.models && nll.cols == head.hidden.rows, "nll must be [B, S]");
  if (head.models == 0 || head.hidden.rows == 0) return;
  DeviceGuard guard(ctx.device);
  mlp_head_kernel<<<blocks_for(head.models * head.hidden.rows, kThreads), kThreads, 0, stream_of(ctx)>>>(
      head, predictions, nll);
  WMF_CUDA_CHECK_LAUNCH();
}

}  // namespace wmf
