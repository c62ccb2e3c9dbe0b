// One thread per (model, sample), samples fastest: a warp reads 32 consecutive samples of one hidden row
// (coalesced). Each thread runs mlp_head_tile on one float lane, the CPU's arithmetic; a model's second layer is
// re-read by all its samples from L1/L2 (C * H floats).
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "eval/mlp_head.h"

namespace wmf {

namespace {

constexpr int kThreads = 128;

__global__ void mlp_head_kernel(MlpHead head, HeadCertificate cert, HeadOutputs out) {
  const int64_t samples = head.hidden.cols;
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= head.models * samples) return;
  mlp_head_tile<float>(head, cert, id / samples, id % samples, 1, out);
}

}  // namespace

void mlp_head_cuda(MlpHead head, HeadCertificate cert, HeadOutputs out, CudaCtx ctx) {
  check_mlp_head(head, out);
  if (head.models == 0 || head.hidden.cols == 0) return;
  DeviceGuard guard(ctx.device);
  mlp_head_kernel<<<blocks_for(head.models * head.hidden.cols, kThreads), kThreads, 0, stream_of(ctx)>>>(
      head, cert, out);
  WMF_CUDA_CHECK_LAUNCH();
}

}  // namespace wmf
