// Rigorous bracket of a squared distance computed from a GEMM (perf_notes §3, issue 3).
//
// The candidate step computes est = sq^2 nq + sr^2 nr - 2 sq sr g, where g = fl(a . b) comes from an fp32 (or
// fp64) GEMM over the operand rows a, b; nq = ||a||^2 and nr = ||b||^2 are exact to float64; sq, sr are row
// scales (1 for L2, 1/||row|| for cosine). The true squared distance of the *original* rows lies in [lo, hi]:
//   |est - ||sq a - sr b||^2| <= e2 = 2 sq sr gemm_rel sqrt(nq nr) + float64 rounding of the expression;
//   | ||sq a - sr b|| - true distance | <= e1 = operand_rel (sq ||a|| + sr ||b||)   (operand copies, e.g. centring).
// gemm_rel bounds the dot-product error for any summation order (gamma_K = K u / (1 - K u) for K-long fp32
// slices summed in float64, plus the input rounding of reduced-precision matmul modes). Python derives it
// (ops/_gram.py); this file only applies it. Norms and scales come precomputed per row: no square root is
// taken per pair unless operand_rel > 0.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/hostdevice.h"

namespace wmf {

struct GramErrorModel {
  double gemm_rel;     // |fl(a.b) - a.b| <= gemm_rel * ||a|| * ||b||
  double operand_rel;  // distance between an operand row and the exact row it stands for, relative to its norm
};

struct SqdistBracket {
  double estimate;  // the GEMM value, clamped at 0
  double lo;        // true squared distance >= lo
  double hi;        // true squared distance <= hi
};

// What the bracket needs of one row: its GEMM operand's squared norm and norm (float64), and its scale.
struct RowTerm {
  double sqnorm;
  double norm;
  double scale;
};

// Per-row float64 terms of one side of a GEMM tile: the operand rows' squared norms and norms, and the
// optional scales (nullptr for L2).
struct RowNorms {
  const double* sqnorm;
  const double* norm;
  const double* scale;
  WMF_HD RowTerm term(int64_t i) const { return {sqnorm[i], norm[i], scale ? scale[i] : 1.0}; }
};

// Covers the float64 rounding of the bracket arithmetic itself (a few operations, each 2^-53).
constexpr double kBracketSlack = 1e-14;

// max(x, 0) without fmax's NaN handling, which compilers may leave as a library call in this hot loop.
WMF_HD double clamp0(double x) { return x > 0.0 ? x : 0.0; }

WMF_HD SqdistBracket bracket_sqdist(double gram, RowTerm q, RowTerm r, GramErrorModel m) {
  const double a = q.scale * q.scale * q.sqnorm;
  const double b = r.scale * r.scale * r.sqnorm;
  const double est = a + b - 2.0 * q.scale * r.scale * gram;
  const double e2 = 2.0 * m.gemm_rel * (q.scale * q.norm) * (r.scale * r.norm) + kBracketSlack * (a + b);
  if (m.operand_rel == 0.0) {  // the common case (uncentred L2) needs no square roots
    return {clamp0(est), clamp0(est - e2) * (1.0 - kBracketSlack), clamp0(est + e2) * (1.0 + kBracketSlack)};
  }
  const double e1 = m.operand_rel * (q.scale * q.norm + r.scale * r.norm);
  const double lo_root = clamp0(sqrt(clamp0(est - e2)) - e1);
  const double hi_root = sqrt(clamp0(est + e2)) + e1;
  return {clamp0(est), lo_root * lo_root * (1.0 - kBracketSlack), hi_root * hi_root * (1.0 + kBracketSlack)};
}

// How a squared distance becomes the value the metric reports.
enum class DistanceOutput : int { kSquared = 0, kEuclidean = 1, kHalfSquared = 2 };

WMF_HD double finish_distance(double sqdist, DistanceOutput output) {
  switch (output) {
    case DistanceOutput::kEuclidean:
      return sqrt(sqdist);
    case DistanceOutput::kHalfSquared:
      return 0.5 * sqdist;
    default:
      return sqdist;
  }
}

}  // namespace wmf
