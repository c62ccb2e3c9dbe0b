// One block of 8 warps per query. Items (candidates that pass tau, or every reference row after an overflow)
// are taken 8 at a time, one per warp; a warp computes one exact squared distance with lanes striding over D
// (float64 accumulation, butterfly sum: the value depends only on the pair). Thread 0 then inserts the round's
// results into the query's top-K in item order, so ties keep the lowest index as on the CPU. Memory-bound: each
// item reads two rows once.
#include "common/check.h"
#include "common/cuda_check.cuh"
#include "common/warp.cuh"
#include "neighbors/nearest_rerank.h"

namespace wmf {

namespace {

constexpr int kWarpsPerBlock = 8;

template <class T>
__device__ double warp_exact_sqdist(const T* a, const T* b, int64_t d, const double* na, const double* nb, int lane) {
  double acc = 0.0;
  if (na == nullptr) {
    for (int64_t i = lane; i < d; i += kWarp) {
      const double diff = static_cast<double>(a[i]) - static_cast<double>(b[i]);
      acc += diff * diff;
    }
  } else {
    const double ka = *na, kb = *nb;
    for (int64_t i = lane; i < d; i += kWarp) {
      const double diff = static_cast<double>(a[i]) / ka - static_cast<double>(b[i]) / kb;
      acc += diff * diff;
    }
  }
  return warp_sum(acc);
}

template <class T>
__global__ void nearest_rerank_kernel(ConstMat<T> query, const double* query_norm, ConstMat<T> reference,
                                      const double* reference_norm, const int64_t* q_index, bool exclude_self,
                                      CandidateState s, Mat<double> out_sqdist, Mat<int64_t> out_index,
                                      DistanceOutput output, Mat<T> out_value, int* short_rows) {
  __shared__ double round_dist[kWarpsPerBlock];
  __shared__ int64_t round_index[kWarpsPerBlock];
  const int64_t q = blockIdx.x;
  const int warp = threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  const bool all_rows = s.overflow[q] != 0;
  const int64_t items = all_rows ? reference.rows : s.cand_count[q];
  const double tau = s.bound_heap[q * s.k];
  const int64_t* cand_index = s.cand_index + q * s.capacity;
  const double* cand_lower = s.cand_lower + q * s.capacity;
  const int64_t self = exclude_self ? q_index[q] : -1;
  const double* nq = query_norm ? query_norm + q : nullptr;
  double* dist = &out_sqdist(q, 0);
  int64_t* index = &out_index(q, 0);
  int64_t filled = 0;  // meaningful in thread 0 only

  for (int64_t base = 0; base < items; base += kWarpsPerBlock) {
    const int64_t item = base + warp;
    int64_t r = -1;
    if (item < items) {
      if (all_rows) {
        r = (item == self) ? -1 : item;
      } else if (cand_lower[item] <= tau) {
        r = cand_index[item];
      }
    }
    double d = 0.0;
    if (r >= 0) {
      const double* nr = reference_norm ? reference_norm + r : nullptr;
      d = warp_exact_sqdist(query.row(q), reference.row(r), query.cols, nq, nr, lane);
    }
    if (lane == 0) {
      round_dist[warp] = d;
      round_index[warp] = r;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 0; w < kWarpsPerBlock; ++w)
        if (round_index[w] >= 0) filled = topk_insert(dist, index, filled, s.k, round_dist[w], round_index[w]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    if (filled != s.k) atomicAdd(short_rows, 1);
    for (int64_t c = 0; c < filled; ++c) out_value(q, c) = static_cast<T>(finish_distance(dist[c], output));
  }
}

}  // namespace

template <class T>
void nearest_rerank_cuda(ConstMat<T> query, const double* query_norm, ConstMat<T> reference,
                         const double* reference_norm, const int64_t* q_index, bool exclude_self, CandidateState state,
                         Mat<double> out_sqdist, Mat<int64_t> out_index, DistanceOutput output, Mat<T> out_value,
                         int* short_rows, CudaCtx ctx) {
  WMF_CHECK(query.col_stride == 1 && reference.col_stride == 1, "rows must be contiguous");
  WMF_CHECK(query.cols == reference.cols, "widths differ: ", query.cols, " vs ", reference.cols);
  WMF_CHECK(out_sqdist.col_stride == 1 && out_index.col_stride == 1, "outputs must be row-major");
  WMF_CHECK(out_sqdist.cols == state.k && out_index.cols == state.k, "outputs must have k columns");
  if (query.rows == 0) return;
  DeviceGuard guard(ctx.device);
  nearest_rerank_kernel<T><<<static_cast<unsigned>(query.rows), kWarpsPerBlock * kWarp, 0, stream_of(ctx)>>>(
      query, query_norm, reference, reference_norm, q_index, exclude_self, state, out_sqdist, out_index, output,
      out_value, short_rows);
  WMF_CUDA_CHECK_LAUNCH();
}

template void nearest_rerank_cuda<float>(ConstMat<float>, const double*, ConstMat<float>, const double*, const int64_t*,
                                         bool, CandidateState, Mat<double>, Mat<int64_t>, DistanceOutput, Mat<float>, int*, CudaCtx);
template void nearest_rerank_cuda<double>(ConstMat<double>, const double*, ConstMat<double>, const double*, const int64_t*,
                                          bool, CandidateState, Mat<double>, Mat<int64_t>, DistanceOutput, Mat<double>, int*,
                                          CudaCtx);

}  // namespace wmf
