#include "common/check.h"
#include "eval/mlp_head.h"

namespace wmf {

void mlp_head_cpu(MlpHead head, Mat<int64_t> predictions, Mat<float> nll) {
  WMF_CHECK(head.width >= 1 && head.width <= kMaxHeadWidth, "hidden width must be in [1, 256]; got ", head.width);
  WMF_CHECK(head.classes >= 1 && head.classes <= kMaxHeadClasses, "classes must be in [1, 256]; got ", head.classes);
  WMF_CHECK(head.hidden.cols == head.models * head.width && head.hidden.col_stride == 1, "hidden must be [S, B * H]");
  WMF_CHECK(predictions.rows == head.models && predictions.cols == head.hidden.rows, "predictions must be [B, S]");
  WMF_CHECK(nll.rows == head.models && nll.cols == head.hidden.rows, "nll must be [B, S]");
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (int64_t b = 0; b < head.models; ++b)
    for (int64_t s = 0; s < head.hidden.rows; ++s) predictions(b, s) = mlp_head_one(head, b, s, &nll(b, s));
}

}  // namespace wmf
