// Exact squared distances (issue 3, "exact re-rank"): terms formed in float64 and summed in float64 in a fixed
// order, so the same pair always gives the same bits (ties between exact duplicates are then real ties, broken by
// index). For L2 the relative error is <= (D + 3) * 2^-53 because every term is non-negative.
// With norms (cosine), each term is a[i] / na - b[i] / nb: the distance between the unit vectors, by division
// (correctly rounded) so that parallel rows related by a power of two, or D = 1, give exactly 0.
#pragma once
#include <cstdint>

#include "common/hostdevice.h"

namespace wmf {

// Eight independent accumulators: enough for the compiler to keep vector lanes busy, and the summation order
// depends only on D (never on alignment or threads).
constexpr int kExactLanes = 8;

// sum_i term(i)^2 for i < d in the fixed lane order.
template <class Term>
WMF_HD double fixed_order_sum_of_squares(int64_t d, Term term) {
  double acc[kExactLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t full = d - d % kExactLanes;
  for (int64_t i = 0; i < full; i += kExactLanes) {
#pragma unroll
    for (int l = 0; l < kExactLanes; ++l) {
      const double t = term(i + l);
      acc[l] += t * t;
    }
  }
  for (int64_t i = full; i < d; ++i) {
    const double t = term(i);
    acc[i - full] += t * t;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// ||a - b||^2, or ||a / na - b / nb||^2 when norms are given (both or neither).
template <class T>
WMF_HD double exact_sqdist(const T* a, const T* b, int64_t d, const double* na, const double* nb) {
  if (na == nullptr)
    return fixed_order_sum_of_squares(d, [=](int64_t i) { return static_cast<double>(a[i]) - static_cast<double>(b[i]); });
  const double ka = *na, kb = *nb;
  return fixed_order_sum_of_squares(d, [=](int64_t i) { return static_cast<double>(a[i]) / ka - static_cast<double>(b[i]) / kb; });
}

}  // namespace wmf
