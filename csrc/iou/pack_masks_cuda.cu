// One thread per output word: it reads its 64 consecutive samples (a warp covers 2 KB of one row for bool masks)
// and writes one word. Memory-bound.
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "iou/bitmask.h"
#include "iou/pack_masks.h"

namespace wmf {

namespace {

constexpr int kThreads = 256;

template <class Predicate>
__global__ void pack_kernel(int64_t rows, int64_t n_bits, Mat<int64_t> words, Predicate is_set) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= rows * words.cols) return;
  const int64_t i = id / words.cols;
  const int64_t w = id % words.cols;
  words(i, w) = static_cast<int64_t>(pack_word(w, n_bits, [&](int64_t t) { return is_set(i, t); }));
}

struct MaskSet {
  ConstMat<uint8_t> masks;
  __device__ bool operator()(int64_t i, int64_t t) const { return masks(i, t) != 0; }
};

template <class I>
struct Mispredicted {
  ConstMat<I> predictions;
  const I* labels;
  __device__ bool operator()(int64_t i, int64_t t) const { return predictions(i, t) != labels[t]; }
};

template <class Predicate>
void launch_pack(int64_t rows, int64_t n_bits, Mat<int64_t> words, Predicate is_set, CudaCtx ctx) {
  WMF_CHECK(words.rows == rows && words.cols == (n_bits + 63) / 64, "words must be [N, ceil(S / 64)]");
  if (rows == 0) return;
  DeviceGuard guard(ctx.device);
  pack_kernel<<<blocks_for(rows * words.cols, kThreads), kThreads, 0, stream_of(ctx)>>>(rows, n_bits, words, is_set);
  WMF_CUDA_CHECK_LAUNCH();
}

__global__ void mask_counts_kernel(ConstMat<int64_t> words, Vec<int64_t> counts) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= words.rows) return;
  int64_t total = 0;
  for (int64_t w = 0; w < words.cols; ++w) total += popcount64(static_cast<uint64_t>(words(i, w)));
  counts[i] = total;
}

}  // namespace

void pack_masks_cuda(ConstMat<uint8_t> masks, Mat<int64_t> words, CudaCtx ctx) {
  launch_pack(masks.rows, masks.cols, words, MaskSet{masks}, ctx);
}

template <class I>
void error_masks_cuda(ConstMat<I> predictions, const I* labels, Mat<int64_t> words, CudaCtx ctx) {
  launch_pack(predictions.rows, predictions.cols, words, Mispredicted<I>{predictions, labels}, ctx);
}

void mask_counts_cuda(ConstMat<int64_t> words, Vec<int64_t> counts, CudaCtx ctx) {
  WMF_CHECK(counts.size == words.rows, "counts need one entry per row");
  if (words.rows == 0) return;
  DeviceGuard guard(ctx.device);
  mask_counts_kernel<<<blocks_for(words.rows, kThreads), kThreads, 0, stream_of(ctx)>>>(words, counts);
  WMF_CUDA_CHECK_LAUNCH();
}

template void error_masks_cuda<int32_t>(ConstMat<int32_t>, const int32_t*, Mat<int64_t>, CudaCtx);
template void error_masks_cuda<int64_t>(ConstMat<int64_t>, const int64_t*, Mat<int64_t>, CudaCtx);

}  // namespace wmf
