#include "distances/pairwise_from_gram.h"

#include "common/check.h"

namespace wmf {

template <class G, class T>
void pairwise_from_gram_cpu(ConstMat<G> gram, GramSide<T> query, GramSide<T> ref, GramErrorModel model,
                            double rel_tol, DistanceOutput output, Mat<T> out) {
  WMF_CHECK(query.rows.col_stride == 1 && ref.rows.col_stride == 1, "rows must be contiguous");
  WMF_CHECK(query.rows.cols == ref.rows.cols, "widths differ: ", query.rows.cols, " vs ", ref.rows.cols);
  WMF_CHECK(gram.rows == query.rows.rows && gram.cols == ref.rows.rows, "gram tile shape does not match rows");
  WMF_CHECK(out.rows == gram.rows && out.cols == gram.cols, "out tile shape does not match gram");
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(dynamic, 4)
#endif
  for (int64_t i = 0; i < gram.rows; ++i)
    for (int64_t j = 0; j < gram.cols; ++j) out(i, j) = pairwise_entry(gram, query, ref, model, rel_tol, output, i, j);
}

template void pairwise_from_gram_cpu<float, float>(ConstMat<float>, GramSide<float>, GramSide<float>, GramErrorModel,
    double, DistanceOutput, Mat<float>);
template void pairwise_from_gram_cpu<float, double>(ConstMat<float>, GramSide<double>, GramSide<double>, GramErrorModel,
    double, DistanceOutput, Mat<double>);
template void pairwise_from_gram_cpu<double, float>(ConstMat<double>, GramSide<float>, GramSide<float>, GramErrorModel,
    double, DistanceOutput, Mat<float>);
template void pairwise_from_gram_cpu<double, double>(ConstMat<double>, GramSide<double>, GramSide<double>, GramErrorModel,
    double, DistanceOutput, Mat<double>);

}  // namespace wmf
