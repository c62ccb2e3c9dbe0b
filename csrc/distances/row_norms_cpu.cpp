#include <cmath>

#include "common/check.h"
#include "distances/exact_sqdist.h"
#include "distances/row_norms.h"

namespace wmf {

template <class T>
void row_norms_cpu(ConstMat<T> x, Vec<double> sqnorm, Vec<double> norm, bool require_nonzero, int* unusable) {
  WMF_CHECK(x.col_stride == 1, "rows must be contiguous");
  WMF_CHECK(sqnorm.size == x.rows && norm.size == x.rows, "outputs need one entry per row");
  int bad = 0;
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(static) reduction(+ : bad)
#endif
  for (int64_t i = 0; i < x.rows; ++i) {
    const T* row = x.row(i);
    const double s = fixed_order_sum_of_squares(x.cols, [=](int64_t j) { return static_cast<double>(row[j]); });
    sqnorm[i] = s;
    norm[i] = std::sqrt(s);
    bad += unusable_row(s, require_nonzero) ? 1 : 0;
  }
  if (unusable != nullptr) *unusable += bad;
}

template void row_norms_cpu<float>(ConstMat<float>, Vec<double>, Vec<double>, bool, int*);
template void row_norms_cpu<double>(ConstMat<double>, Vec<double>, Vec<double>, bool, int*);

}  // namespace wmf
