#include "neighbors/nearest_rerank.h"

#include "common/check.h"
#include "distances/exact_sqdist.h"

namespace wmf {

template <class T>
void nearest_rerank_cpu(ConstMat<T> query, const double* query_norm, ConstMat<T> reference,
                        const double* reference_norm, const int64_t* q_index, bool exclude_self, CandidateState s,
                        Mat<double> out_sqdist, Mat<int64_t> out_index, DistanceOutput output,
                        Mat<T> out_value, int* short_rows) {
  WMF_CHECK(query.col_stride == 1 && reference.col_stride == 1, "rows must be contiguous");
  WMF_CHECK(query.cols == reference.cols, "widths differ: ", query.cols, " vs ", reference.cols);
  WMF_CHECK(out_sqdist.col_stride == 1 && out_index.col_stride == 1, "outputs must be row-major");
  WMF_CHECK(out_sqdist.cols == s.k && out_index.cols == s.k, "outputs must have k columns");
  int short_count = 0;
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(dynamic, 8) reduction(+ : short_count)
#endif
  for (int64_t q = 0; q < query.rows; ++q) {
    double* dist = &out_sqdist(q, 0);
    int64_t* index = &out_index(q, 0);
    const T* qrow = query.row(q);
    const double* nq = query_norm ? query_norm + q : nullptr;
    const int64_t self = exclude_self ? q_index[q] : -1;
    int64_t filled = 0;
    auto consider = [&](int64_t r) {
      const double* nr = reference_norm ? reference_norm + r : nullptr;
      const double d = exact_sqdist(qrow, reference.row(r), query.cols, nq, nr);
      filled = topk_insert(dist, index, filled, s.k, d, r);
    };
    if (s.overflow[q]) {
      for (int64_t r = 0; r < reference.rows; ++r)
        if (r != self) consider(r);
    } else {
      const double tau = s.bound_heap[q * s.k];
      const int64_t* cand_index = s.cand_index + q * s.capacity;
      const double* cand_lower = s.cand_lower + q * s.capacity;
      for (int64_t c = 0; c < s.cand_count[q]; ++c)
        if (cand_lower[c] <= tau) consider(cand_index[c]);
    }
    if (filled != s.k) ++short_count;
    for (int64_t c = 0; c < filled; ++c) out_value(q, c) = static_cast<T>(finish_distance(dist[c], output));
  }
  *short_rows += short_count;
}

template void nearest_rerank_cpu<float>(ConstMat<float>, const double*, ConstMat<float>, const double*, const int64_t*, bool,
                                        CandidateState, Mat<double>, Mat<int64_t>, DistanceOutput, Mat<float>, int*);
template void nearest_rerank_cpu<double>(ConstMat<double>, const double*, ConstMat<double>, const double*, const int64_t*,
                                         bool, CandidateState, Mat<double>, Mat<int64_t>, DistanceOutput, Mat<double>, int*);

}  // namespace wmf
