#include "distances/row_sqnorms.h"

#include "common/check.h"
#include "distances/exact_sqdist.h"

namespace wmf {

template <class T>
void row_sqnorms_cpu(ConstMat<T> x, Vec<double> out) {
  WMF_CHECK(x.col_stride == 1, "rows must be contiguous");
  WMF_CHECK(out.size == x.rows, "out has ", out.size, " entries for ", x.rows, " rows");
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (int64_t i = 0; i < x.rows; ++i) {
    const T* row = x.row(i);
    out[i] = fixed_order_sum_of_squares(x.cols, [=](int64_t j) { return static_cast<double>(row[j]); });
  }
}

template void row_sqnorms_cpu<float>(ConstMat<float>, Vec<double>);
template void row_sqnorms_cpu<double>(ConstMat<double>, Vec<double>);

}  // namespace wmf
