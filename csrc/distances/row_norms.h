// row_norms (issue 3): sqnorm[i] = sum_j x[i, j]^2 accumulated in float64 (fixed order), norm[i] = its sqrt.
// Used for the GEMM expansion, cosine scales, and input validation: a float32 row is finite iff its float64
// squared norm is. unusable (nullable, one int) is incremented for every row whose squared norm is not finite,
// or is 0 when require_nonzero (cosine), so Python can validate with one read after all kernels have run.
// x: [R, D] float32 or float64 with col_stride 1; sqnorm, norm: [R] float64.
#pragma once
#include <cstdint>

#include <cmath>

#include "common/views.h"

namespace wmf {

template <class T>
void row_norms_cpu(ConstMat<T> x, Vec<double> sqnorm, Vec<double> norm, bool require_nonzero, int* unusable);

template <class T>
void row_norms_cuda(ConstMat<T> x, Vec<double> sqnorm, Vec<double> norm, bool require_nonzero, int* unusable,
                    CudaCtx ctx);

// True for a squared norm that the metric cannot use. NaN fails `< inf`, so it counts too.
WMF_HD bool unusable_row(double sqnorm, bool require_nonzero) {
  return !(sqnorm < INFINITY) || (require_nonzero && sqnorm == 0.0);
}

}  // namespace wmf
