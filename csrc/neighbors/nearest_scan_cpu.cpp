// CPU scan: a thread per query row. Columns go in chunks: a branch-free pass (vectorised, see cpu_clones.h)
// asks whether any lower bound in the chunk can be <= tau, and only such rare chunks take the scalar path.
#include <cmath>

#include "common/check.h"
#include "common/cpu_clones.h"
#include "neighbors/nearest_scan.h"

namespace wmf {

namespace {

constexpr int64_t kChunk = 64;

// True if some column of g[0, n) may have lo <= tau. lo <= tau <=> est - e2 <= (sqrt(tau) + e1)^2 for
// est - e2 >= 0 (gram_bounds.h), so no square root per pair; the factor absorbs this test's own rounding.
template <class G, bool kScaled>
inline bool chunk_may_hold_candidate(const G* g, const RowTerm& q, const double* sqnorm, const double* norm,
                                     const double* scale, GramErrorModel m, int64_t n, double tau) {
  if (!(tau < INFINITY)) return true;  // fewer than k rows seen: everything is a candidate (and 0 * inf is NaN)
  const double a = q.scale * q.scale * q.sqnorm;
  const double qn = q.scale * q.norm;
  const double root_tau = std::sqrt(tau);
  int any = 0;  // an int reduction vectorises; a bool one does not (GCC 12)
  for (int64_t j = 0; j < n; ++j) {
    const double s = kScaled ? scale[j] : 1.0;
    const double b = s * s * sqnorm[j];
    const double rn = s * norm[j];
    const double est = a + b - 2.0 * q.scale * s * static_cast<double>(g[j]);
    const double e2 = 2.0 * m.gemm_rel * qn * rn + kBracketSlack * (a + b);
    const double e1 = m.operand_rel * (qn + rn);
    const double reach = tau + e1 * (2.0 * root_tau + e1);
    any |= (est - e2) <= reach * (1.0 + 1e-12);
  }
  return any != 0;
}

WMF_CPU_CLONES bool chunk_filter(const float* g, const RowTerm& q, const RowNorms& ref, GramErrorModel m,
                                 int64_t n, double tau) {
  return ref.scale ? chunk_may_hold_candidate<float, true>(g, q, ref.sqnorm, ref.norm, ref.scale, m, n, tau)
                   : chunk_may_hold_candidate<float, false>(g, q, ref.sqnorm, ref.norm, ref.scale, m, n, tau);
}

WMF_CPU_CLONES bool chunk_filter(const double* g, const RowTerm& q, const RowNorms& ref, GramErrorModel m,
                                 int64_t n, double tau) {
  return ref.scale ? chunk_may_hold_candidate<double, true>(g, q, ref.sqnorm, ref.norm, ref.scale, m, n, tau)
                   : chunk_may_hold_candidate<double, false>(g, q, ref.sqnorm, ref.norm, ref.scale, m, n, tau);
}

// Visits columns [j0, j1) of query row i.
template <class G>
inline void scan_columns(RowScan& scan, ConstMat<G> gram, const RowTerm& q, RowNorms ref, GramErrorModel model,
                         int64_t i, int64_t j0, int64_t j1, int64_t self_col, int64_t r_offset) {
  for (int64_t j = j0; j < j1; ++j) {
    const SqdistBracket b = bracket_sqdist(static_cast<double>(gram(i, j)), q, ref.term(j), model);
    if (b.lo > scan.tau || j == self_col) continue;  // the common, far case: one predictable branch
    scan.visit(b, r_offset + j);
  }
}

}  // namespace

template <class G>
void nearest_scan_cpu(ConstMat<G> gram, RowNorms query, RowNorms ref, GramErrorModel model, const int64_t* q_index,
                      int64_t r_offset, bool exclude_self, CandidateState state) {
  WMF_CHECK(state.k >= 1 && state.capacity >= state.k, "need 1 <= k <= capacity");
  WMF_CHECK(gram.col_stride == 1, "the CPU scan reads query-major tiles");
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (int64_t i = 0; i < gram.rows; ++i) {
    RowScan scan(state, i);
    const RowTerm q = query.term(i);
    const int64_t self_col = exclude_self ? q_index[i] - r_offset : -1;
    const G* row = gram.data + i * gram.row_stride;
    for (int64_t j0 = 0; j0 < gram.cols; j0 += kChunk) {
      const int64_t j1 = j0 + kChunk < gram.cols ? j0 + kChunk : gram.cols;
      const RowNorms chunk_ref{ref.sqnorm + j0, ref.norm + j0, ref.scale ? ref.scale + j0 : nullptr};
      if (!chunk_filter(row + j0, q, chunk_ref, model, j1 - j0, scan.tau)) continue;
      scan_columns(scan, gram, q, ref, model, i, j0, j1, self_col, r_offset);
    }
    scan.store(state, i);
  }
}

template void nearest_scan_cpu<float>(ConstMat<float>, RowNorms, RowNorms, GramErrorModel, const int64_t*, int64_t,
                                      bool, CandidateState);
template void nearest_scan_cpu<double>(ConstMat<double>, RowNorms, RowNorms, GramErrorModel, const int64_t*, int64_t,
                                       bool, CandidateState);

}  // namespace wmf
