// Lane types: arithmetic written once over a "lane" type L runs per thread on CUDA (L = float, one sample) and
// several samples at a time on the CPU (L = f32x4 / f32x8 / f32x16, GCC/Clang vectors as wide as the
// instruction set's registers). Masks are bool for float and all-ones integer lanes for vectors; the
// functions below (and + - * and comparisons) are the only operations the shared code uses, so every lane
// type gives the same IEEE float32 arithmetic lane by lane.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/hostdevice.h"

namespace wmf {

WMF_HD float lane_select(bool mask, float a, float b) { return mask ? a : b; }
WMF_HD bool lane_not(bool mask) { return !mask; }
WMF_HD float lane_abs(float x) { return fabsf(x); }
WMF_HD float lane_floor(float x) { return floorf(x); }
// 2^n for integral n in [-126, 127], exactly, from the exponent bits.
WMF_HD float lane_pow2(float n) {
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float out;
  memcpy(&out, &bits, sizeof(out));
  return out;
}
WMF_HD void load_lanes(float& out, const float* src, int /*lanes == 1*/) { out = *src; }
WMF_HD float lane_get(float x, int /*lane*/) { return x; }
WMF_HD bool lane_get(bool mask, int /*lane*/) { return mask; }

#if !defined(__CUDACC__) && (defined(__GNUC__) || defined(__clang__))
// CPU lane vectors, one per instruction set the CPU kernels are built for (see their *_cpu.cpp).
typedef float f32x4 __attribute__((vector_size(16)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x16 __attribute__((vector_size(64)));

template <class V>
constexpr int lane_count() {
  return static_cast<int>(sizeof(V) / sizeof(float));
}
// The integer lanes of V's comparisons (all ones where true).
template <class V>
using LaneMask = decltype(V{} < V{});

template <class M, class V>
inline V lane_select(M mask, V a, V b) {
  return mask ? a : b;
}
template <class M>
inline M lane_not(M mask) {
  return ~mask;
}
template <class V>
inline V lane_abs(V x) {
  LaneMask<V> bits;
  memcpy(&bits, &x, sizeof(x));
  bits &= 0x7fffffff;
  memcpy(&x, &bits, sizeof(x));
  return x;
}
template <class V>
inline V lane_floor(V x) {
  // Truncation toward zero, minus one where that rounded up (negative non-integers). |x| < 2^31 here.
  const V t = __builtin_convertvector(__builtin_convertvector(x, LaneMask<V>), V);
  return lane_select(x < t, t - 1.0f, t);
}
template <class V>
inline V lane_pow2(V n) {
  const LaneMask<V> bits = (__builtin_convertvector(n, LaneMask<V>) + 127) << 23;
  V out;
  memcpy(&out, &bits, sizeof(out));
  return out;
}
// src[0, lanes) into the first lanes, zeros after them.
template <class V>
inline void load_lanes(V& out, const float* src, int lanes) {
  if (lanes == lane_count<V>()) {
    memcpy(&out, src, sizeof(out));
    return;
  }
  out = V{};
  for (int l = 0; l < lanes; ++l) out[l] = src[l];
}
template <class V>
inline auto lane_get(V x, int lane) {
  return x[lane];
}
#endif

// exp(x) for x <= 0 (Cephes expf: x = n ln2 + r, |r| <= ln2 / 2, degree-5 polynomial, about 2 ulp);
// 0 below -87, where expf is subnormal.
template <class L>
WMF_HD L exp_nonpositive(L x) {
  const L clamped = lane_select(x < -87.0f, L{} - 87.0f, x);
  const L n = lane_floor(clamped * 1.44269504088896341f + 0.5f);
  const L r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  L p = L{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const L e = p * r * r + r + 1.0f;
  return lane_select(x < -87.0f, L{}, e * lane_pow2(n));
}

}  // namespace wmf
