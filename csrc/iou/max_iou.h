// max_iou (issue 4): for every packed query row i, the K reference rows with the highest IoU, descending, ties
// (equal rationals) to the lowest index; exclude_self skips reference row i (by index, same set). Streams over the
// reference: memory O(N K). top_inter, top_union [N, K] int64 are scratch holding the exact counts of the current
// top-K; out_values [N, K] float32 and out_index [N, K] int64 are the results.
#pragma once
#include <cstdint>

#include "common/views.h"

namespace wmf {

struct IouTopK {
  Mat<int64_t> top_inter;
  Mat<int64_t> top_union;
  Mat<float> out_values;
  Mat<int64_t> out_index;
};

void max_iou_cpu(ConstMat<int64_t> query, const int64_t* count_q, ConstMat<int64_t> reference,
                 const int64_t* count_r, bool exclude_self, IouTopK top);
void max_iou_cuda(ConstMat<int64_t> query, const int64_t* count_q, ConstMat<int64_t> reference,
                  const int64_t* count_r, bool exclude_self, IouTopK top, CudaCtx ctx);

}  // namespace wmf
