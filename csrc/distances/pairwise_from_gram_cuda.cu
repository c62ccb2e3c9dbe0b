// One thread per output element, a 32 x 8 block over (column j, row i): consecutive threads read consecutive
// gram and out entries of a row-major tile. A pair whose bracket is too wide is recomputed by its own thread
// (sequential exact_sqdist over D): slow only where the expansion has cancelled, and always correct.
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "distances/pairwise_from_gram.h"

namespace wmf {

namespace {

template <class G, class T>
__global__ void pairwise_from_gram_kernel(ConstMat<G> gram, GramSide<T> query, GramSide<T> ref, GramErrorModel model,
                                          double rel_tol, DistanceOutput output, Mat<T> out) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;
  if (i >= gram.rows || j >= gram.cols) return;
  out(i, j) = pairwise_entry(gram, query, ref, model, rel_tol, output, i, j);
}

}  // namespace

template <class G, class T>
void pairwise_from_gram_cuda(ConstMat<G> gram, GramSide<T> query, GramSide<T> ref, GramErrorModel model,
                             double rel_tol, DistanceOutput output, Mat<T> out, CudaCtx ctx) {
  WMF_CHECK(query.rows.col_stride == 1 && ref.rows.col_stride == 1, "rows must be contiguous");
  WMF_CHECK(query.rows.cols == ref.rows.cols, "widths differ: ", query.rows.cols, " vs ", ref.rows.cols);
  WMF_CHECK(gram.rows == query.rows.rows && gram.cols == ref.rows.rows, "gram tile shape does not match rows");
  WMF_CHECK(out.rows == gram.rows && out.cols == gram.cols, "out tile shape does not match gram");
  WMF_CHECK(gram.rows <= 65535LL * 8, "tile has too many rows for one launch: ", gram.rows);
  DeviceGuard guard(ctx.device);
  const dim3 threads(32, 8);
  const dim3 blocks(blocks_for(gram.cols, 32), blocks_for(gram.rows, 8));
  pairwise_from_gram_kernel<G, T><<<blocks, threads, 0, stream_of(ctx)>>>(gram, query, ref, model, rel_tol, output, out);
  WMF_CUDA_CHECK_LAUNCH();
}

template void pairwise_from_gram_cuda<float, float>(ConstMat<float>, GramSide<float>, GramSide<float>, GramErrorModel,
    double, DistanceOutput, Mat<float>, CudaCtx);
template void pairwise_from_gram_cuda<float, double>(ConstMat<float>, GramSide<double>, GramSide<double>, GramErrorModel,
    double, DistanceOutput, Mat<double>, CudaCtx);
template void pairwise_from_gram_cuda<double, float>(ConstMat<double>, GramSide<float>, GramSide<float>, GramErrorModel,
    double, DistanceOutput, Mat<float>, CudaCtx);
template void pairwise_from_gram_cuda<double, double>(ConstMat<double>, GramSide<double>, GramSide<double>, GramErrorModel,
    double, DistanceOutput, Mat<double>, CudaCtx);

}  // namespace wmf
