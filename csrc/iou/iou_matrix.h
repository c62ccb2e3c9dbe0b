// iou_matrix (issue 4): out[i, j] = IoU(a_i, b_j) (bitmask.h) for packed a [N, W] and b [M, W] (row-major rows),
// with their popcounts count_a [N] and count_b [M]; out [N, M] float32, any row stride.
#pragma once
#include <cstdint>

#include "common/views.h"

namespace wmf {

void iou_matrix_cpu(ConstMat<int64_t> a, const int64_t* count_a, ConstMat<int64_t> b, const int64_t* count_b,
                    Mat<float> out);
void iou_matrix_cuda(ConstMat<int64_t> a, const int64_t* count_a, ConstMat<int64_t> b, const int64_t* count_b,
                     Mat<float> out, CudaCtx ctx);

}  // namespace wmf
