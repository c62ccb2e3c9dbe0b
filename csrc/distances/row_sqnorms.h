// row_sqnorms (issue 3): out[i] = sum_j x[i, j]^2, accumulated in float64 (fixed order, 8 lanes).
// Used for the GEMM expansion, cosine scales, and the NaN/Inf check: a float32 row is finite iff its float64
// squared norm is finite. x: [R, D] float32 or float64 with col_stride 1; out: [R] float64.
#pragma once
#include <cstdint>

#include "common/views.h"

namespace wmf {

template <class T>
void row_sqnorms_cpu(ConstMat<T> x, Vec<double> out);

template <class T>
void row_sqnorms_cuda(ConstMat<T> x, Vec<double> out, CudaCtx ctx);

}  // namespace wmf
