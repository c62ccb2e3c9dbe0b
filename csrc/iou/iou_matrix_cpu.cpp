#include "common/check.h"
#include "iou/bitmask.h"
#include "iou/iou_matrix.h"
#include "iou/popcount_cpu.h"

namespace wmf {

void iou_matrix_cpu(ConstMat<int64_t> a, const int64_t* count_a, ConstMat<int64_t> b, const int64_t* count_b,
                    Mat<float> out) {
  WMF_CHECK(a.col_stride == 1 && b.col_stride == 1, "packed rows must be contiguous");
  WMF_CHECK(a.cols == b.cols, "word counts differ: ", a.cols, " vs ", b.cols);
  WMF_CHECK(out.rows == a.rows && out.cols == b.rows, "out must be [N, M]");
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < b.rows; ++j)
      out(i, j) = iou_value(iou_count(and_popcount(a.row(i), b.row(j), a.cols), count_a[i], count_b[j]));
}

}  // namespace wmf
