// nearest_rerank (issue 3): the exact step of `nearest`. For each query q of the block (global index
// q_index[q]), evaluates exact_sqdist for every candidate with cand_lower <= tau (or, if overflow[q], for every
// reference row) and keeps the K smallest, ascending, ties to the lowest index. exclude_self skips reference
// row q_index[q]. query [Qb, D] and reference [M, D] hold the exact rows (col_stride 1); norms are nullptr
// (L2) or ||row|| (cosine: distances of unit rows). Outputs: out_sqdist [Qb, K] float64 squared distances
// (the ranking keys), out_index [Qb, K] int64, and out_value [Qb, K] in T: finish_distance(out_sqdist, output).
// short_rows (one int, device memory for CUDA) is incremented for every query left with fewer than K results;
// the search invariant makes that impossible, so Python treats a non-zero count as an internal error.
#pragma once
#include <cstdint>

#include "common/views.h"
#include "distances/gram_bounds.h"
#include "neighbors/candidate_state.h"

namespace wmf {

template <class T>
void nearest_rerank_cpu(ConstMat<T> query, const double* query_norm, ConstMat<T> reference,
                        const double* reference_norm, const int64_t* q_index, bool exclude_self, CandidateState state,
                        Mat<double> out_sqdist, Mat<int64_t> out_index, DistanceOutput output, Mat<T> out_value,
                        int* short_rows);

template <class T>
void nearest_rerank_cuda(ConstMat<T> query, const double* query_norm, ConstMat<T> reference,
                         const double* reference_norm, const int64_t* q_index, bool exclude_self, CandidateState state,
                         Mat<double> out_sqdist, Mat<int64_t> out_index, DistanceOutput output, Mat<T> out_value,
                         int* short_rows, CudaCtx ctx);

}  // namespace wmf
