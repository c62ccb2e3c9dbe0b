// chamfer_matrix (issue 6; study_spec §2.5 and §9 item 16). For every pair of point clouds a = A[n] [P, 3] and
// b = B[m] [Q, 3]:
//   out(n, m) = mean_{i < P} min_{j < Q} f(||a_i - b_j||^2) + mean_{j < Q} min_{i < P} f(||a_i - b_j||^2),
// f(s) = s when squared (HyperDiffusion's and pytorch3d's definition), f(s) = sqrt(s) otherwise.
//
// Arithmetic, the same on both backends: every squared distance is computed from differences in T, never from the
// ||a||^2 + ||b||^2 - 2 a.b expansion, as sq_dist3(d) = (dx*dx + dy*dy) + dz*dz with d = b - a (or a - b: the
// squares are equal) and every operation rounded once in T, with no fused multiply-add (the CPU file turns
// contraction off, the CUDA file spells the roundings out with __fmul_rn/__fadd_rn; the torch twin runs the same
// elementwise ops). A minimum is exact in any order, so every per-point minimum is exactly the minimum of those
// values on both backends; f, the sums and the means are taken in float64 and rounded once to T. CPU and CUDA can
// differ only through the order of the float64 sums (the CPU adds points in order, CUDA in a fixed tree).
//
// Consequences the tests rely on: CD(a, b) == CD(b, a) bit for bit (same minima; float64 x + y == y + x), and
// CD(a, a) == 0 exactly (every point's minimum is its zero distance to itself).
//
// symmetric: A and B are the same batch (the caller passes the same tensor twice, so N == M and P == Q). Only the
// pairs n < m are computed and mirrored into out(m, n); the diagonal is written as 0. Exact, by the above.
//
// Inputs: A [N, P, 3] and B [M, Q, 3] contiguous, T = float or double, P, Q >= 1, every coordinate finite (the
// Python layer checks; the CPU kernel's padding relies on it). out [N, M], any strides. Memory: O(P + Q) per CPU
// thread and per CUDA block; no [P, Q] distance tile is ever stored, let alone N x M x P x Q.
#pragma once
#include <cstdint>

#include "common/hostdevice.h"
#include "common/views.h"

namespace wmf {

// A batch of point clouds [count, points, 3], contiguous.
template <class T>
struct CloudBatch {
  const T* data;
  int64_t count;
  int64_t points;
  WMF_HD const T* cloud(int64_t c) const { return data + c * points * 3; }
};

template <class T>
void chamfer_matrix_cpu(CloudBatch<T> a, CloudBatch<T> b, bool squared, bool symmetric, Mat<T> out);

template <class T>
void chamfer_matrix_cuda(CloudBatch<T> a, CloudBatch<T> b, bool squared, bool symmetric, Mat<T> out, CudaCtx ctx);

}  // namespace wmf
