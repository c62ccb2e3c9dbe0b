#include "common/check.h"
#include "iou/bitmask.h"
#include "iou/max_iou.h"
#include "iou/popcount_cpu.h"

namespace wmf {

void max_iou_cpu(ConstMat<int64_t> query, const int64_t* count_q, ConstMat<int64_t> reference,
                 const int64_t* count_r, bool exclude_self, IouTopK top) {
  WMF_CHECK(query.col_stride == 1 && reference.col_stride == 1, "packed rows must be contiguous");
  WMF_CHECK(query.cols == reference.cols, "word counts differ: ", query.cols, " vs ", reference.cols);
  const int64_t k = top.out_index.cols;
  WMF_CHECK(k >= 1 && top.top_inter.cols == k && top.top_union.cols == k && top.out_values.cols == k,
            "top-k buffers must have k columns");
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(dynamic, 16)
#endif
  for (int64_t i = 0; i < query.rows; ++i) {
    int64_t* inter = &top.top_inter(i, 0);
    int64_t* uni = &top.top_union(i, 0);
    int64_t* index = &top.out_index(i, 0);
    int64_t filled = 0;
    for (int64_t j = 0; j < reference.rows; ++j) {
      if (exclude_self && j == i) continue;
      const IouCount c = iou_count(and_popcount(query.row(i), reference.row(j), query.cols), count_q[i], count_r[j]);
      filled = topk_insert_iou(inter, uni, index, filled, k, c, j);
    }
    for (int64_t c = 0; c < filled; ++c) top.out_values(i, c) = iou_value(IouCount{inter[c], uni[c]});
  }
}

}  // namespace wmf
