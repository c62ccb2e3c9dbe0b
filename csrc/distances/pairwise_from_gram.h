// pairwise_from_gram (issue 3, `pairwise_distance`): turns one GEMM tile into exact distances.
//   For each (i, j): bracket the squared distance from gram(i, j) (gram_bounds.h). If the bracket is within
//   rel_tol of its lower end, the GEMM estimate is returned; otherwise the pair is recomputed from the original
//   rows with exact_sqdist. Every returned value therefore has relative error <= rel_tol (plus the final
//   rounding to T), including near-duplicate pairs where the expansion has cancelled.
// Shapes: gram [Qb, Rt] (any strides; float32, or float64 when GEMM slices were summed), query.rows [Qb, D] and ref.rows [Rt, D] with col_stride 1 (the exact
// values the tile stands for), norms [Qb] / [Rt] float64 of the GEMM operands, scales nullptr (L2) or
// 1/||row|| (cosine), out [Qb, Rt] (any strides). Output values go through finish_distance.
#pragma once
#include <cstdint>

#include "common/views.h"
#include "distances/exact_sqdist.h"
#include "distances/gram_bounds.h"

namespace wmf {

// One side of a GEMM tile: the exact rows it stands for and their norms.
template <class T>
struct GramSide {
  ConstMat<T> rows;
  RowNorms norms;
};

template <class G, class T>
void pairwise_from_gram_cpu(ConstMat<G> gram, GramSide<T> query, GramSide<T> ref, GramErrorModel model,
                            double rel_tol, DistanceOutput output, Mat<T> out);

template <class G, class T>
void pairwise_from_gram_cuda(ConstMat<G> gram, GramSide<T> query, GramSide<T> ref, GramErrorModel model,
                             double rel_tol, DistanceOutput output, Mat<T> out, CudaCtx ctx);

// The per-element rule shared by both backends.
template <class G, class T>
WMF_HD T pairwise_entry(ConstMat<G> gram, const GramSide<T>& query, const GramSide<T>& ref, GramErrorModel model,
                        double rel_tol, DistanceOutput output, int64_t i, int64_t j) {
  const SqdistBracket b = bracket_sqdist(static_cast<double>(gram(i, j)), query.norms.term(i), ref.norms.term(j), model);
  if (b.hi - b.lo <= rel_tol * b.lo) return static_cast<T>(finish_distance(b.estimate, output));
  // Cosine (scaled rows) is the distance of unit rows; without centring, the operand norms are the rows' own.
  const bool unit = query.norms.scale != nullptr;
  const double sqdist = exact_sqdist(query.rows.row(i), ref.rows.row(j), query.rows.cols,
                                     unit ? query.norms.norm + i : nullptr, unit ? ref.norms.norm + j : nullptr);
  return static_cast<T>(finish_distance(sqdist, output));
}

}  // namespace wmf
