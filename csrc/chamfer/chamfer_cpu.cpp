// CPU Chamfer matrix. OpenMP threads take pairs (n, m) dynamically (pairs cost the same, but the machine may be
// shared). A pair is one pass over its implicit [P, Q] distance tile that yields both directions' minima: a
// distance feeds its row minimum (a point) and its column minimum (b point), so each distance is computed once.
// Clouds are transposed per thread into SoA (x[], y[], z[]): rows (a points) go in register blocks of kRows,
// broadcast; columns (b points) in kLanes-wide vectors (one AVX-512 register of float, two of AVX2) within blocks of
// kColBlock points whose coordinates and column minima stay in L1 (16 KB for float). WMF_CPU_CLONES picks the
// instruction set at load time; the inner loop is plain C++ that GCC vectorises (vsubps/vmulps/vaddps/vminps).
//
// Padding: both SoA copies are padded to a multiple of kLanes (a multiple of kRows), a's with +inf and b's with
// -inf, so every difference involving padding is -inf (b - a: never inf - inf = NaN, as real coordinates are
// finite), every such distance +inf, and padding never wins a real point's minimum; padded minima are not summed.

// No fused multiply-add: the contract (chamfer.h) rounds every product and sum, as the CUDA kernel and the twin do.
// GCC contracts across statements by default in GNU mode, and the AVX-512 clone has FMA.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#if defined(WMF_WITH_OPENMP)
#include <omp.h>
#endif

#include "chamfer/chamfer.h"
#include "common/check.h"
#include "common/cpu_clones.h"

#if defined(__GNUC__) || defined(__clang__)
#define WMF_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define WMF_ALWAYS_INLINE inline
#endif

namespace wmf {

namespace {

constexpr int64_t kLanes = 16;
constexpr int64_t kRows = 4;
constexpr int64_t kColBlock = 1024;  // multiple of kLanes
constexpr int64_t kAlign = 64 / sizeof(float);

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

template <class T>
inline T min_of(T d, T m) {
  return d < m ? d : m;  // exactly x86 min(d, m); no NaN can reach it (see the padding note)
}

template <class T>
inline T sq_dist3(T dx, T dy, T dz) {
  return (dx * dx + dy * dy) + dz * dz;
}

// One cloud in SoA layout, padded to `padded` points.
template <class T>
struct Soa {
  T* x;
  T* y;
  T* z;
  int64_t padded;
};

template <class T>
void to_soa(const T* cloud, int64_t points, T pad, Soa<T> out) {
  for (int64_t i = 0; i < points; ++i) {
    out.x[i] = cloud[3 * i];
    out.y[i] = cloud[3 * i + 1];
    out.z[i] = cloud[3 * i + 2];
  }
  for (int64_t i = points; i < out.padded; ++i) out.x[i] = out.y[i] = out.z[i] = pad;
}

// rowmin[i] = min_j sq_dist3(b_j - a_i) and colmin[j] = min_i sq_dist3(b_j - a_i) over the padded clouds.
// a.padded is a multiple of kRows, b.padded of kLanes. Forced inline: each clone below must compile its own copy
// for its instruction set (GCC otherwise calls one shared, baseline-compiled copy from all three).
template <class T>
WMF_ALWAYS_INLINE void pair_minima(Soa<T> a, Soa<T> b, T* rowmin, T* colmin) {
  const T inf = std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < a.padded; ++i) rowmin[i] = inf;
  for (int64_t j = 0; j < b.padded; ++j) colmin[j] = inf;
  for (int64_t j0 = 0; j0 < b.padded; j0 += kColBlock) {
    const int64_t j1 = j0 + kColBlock < b.padded ? j0 + kColBlock : b.padded;
    for (int64_t i0 = 0; i0 < a.padded; i0 += kRows) {
      T ax[kRows], ay[kRows], az[kRows], rm[kRows][kLanes];
      for (int64_t r = 0; r < kRows; ++r) {
        ax[r] = a.x[i0 + r];
        ay[r] = a.y[i0 + r];
        az[r] = a.z[i0 + r];
        for (int64_t l = 0; l < kLanes; ++l) rm[r][l] = inf;
      }
      for (int64_t j = j0; j < j1; j += kLanes) {
        T cm[kLanes];
        for (int64_t l = 0; l < kLanes; ++l) cm[l] = colmin[j + l];
        for (int64_t r = 0; r < kRows; ++r) {
          for (int64_t l = 0; l < kLanes; ++l) {
            const T d = sq_dist3(b.x[j + l] - ax[r], b.y[j + l] - ay[r], b.z[j + l] - az[r]);
            rm[r][l] = min_of(d, rm[r][l]);
            cm[l] = min_of(d, cm[l]);
          }
        }
        for (int64_t l = 0; l < kLanes; ++l) colmin[j + l] = cm[l];
      }
      for (int64_t r = 0; r < kRows; ++r) {
        T m = rowmin[i0 + r];
        for (int64_t l = 0; l < kLanes; ++l) m = min_of(rm[r][l], m);
        rowmin[i0 + r] = m;
      }
    }
  }
}

WMF_CPU_CLONES void pair_minima_clone(Soa<float> a, Soa<float> b, float* rowmin, float* colmin) {
  pair_minima(a, b, rowmin, colmin);
}

WMF_CPU_CLONES void pair_minima_clone(Soa<double> a, Soa<double> b, double* rowmin, double* colmin) {
  pair_minima(a, b, rowmin, colmin);
}

// mean_i f(minima[i]) in float64, points added in order.
template <class T>
double mean_of(const T* minima, int64_t points, bool squared) {
  double sum = 0.0;
  if (squared) {
    for (int64_t i = 0; i < points; ++i) sum += static_cast<double>(minima[i]);
  } else {
    for (int64_t i = 0; i < points; ++i) sum += std::sqrt(static_cast<double>(minima[i]));
  }
  return sum / static_cast<double>(points);
}

// Per-thread scratch: both clouds in SoA and both minima, each segment 64-byte aligned.
template <class T>
struct Scratch {
  Soa<T> a, b;
  T* rowmin;
  T* colmin;
  int64_t a_cloud = -1;  // which cloud of A is in `a` (a thread's consecutive pairs mostly share it)

  static int64_t size(int64_t pa, int64_t pb) { return round_up(4 * pa + 4 * pb, kAlign) + kAlign; }

  Scratch(T* base, int64_t pa, int64_t pb) {
    T* p = base;
    while (reinterpret_cast<std::uintptr_t>(p) % 64 != 0) ++p;
    a = {p, p + pa, p + 2 * pa, pa};
    p += 3 * pa;
    b = {p, p + pb, p + 2 * pb, pb};
    p += 3 * pb;
    rowmin = p;
    colmin = p + pa;
  }
};

}  // namespace

template <class T>
void chamfer_matrix_cpu(CloudBatch<T> a, CloudBatch<T> b, bool squared, bool symmetric, Mat<T> out) {
  WMF_CHECK(a.points >= 1 && b.points >= 1, "clouds must have at least one point");
  WMF_CHECK(out.rows == a.count && out.cols == b.count, "out must be [N, M]");
  WMF_CHECK(!symmetric || (a.data == b.data && a.count == b.count && a.points == b.points),
            "symmetric mode needs the same batch twice");
  // Padded to kLanes points (a multiple of kRows): every SoA segment of the scratch stays 64-byte aligned.
  const int64_t pa = round_up(a.points, kLanes);
  const int64_t pb = round_up(b.points, kLanes);
  const int64_t pairs = a.count * b.count;
  int threads = 1;
#if defined(WMF_WITH_OPENMP)
  threads = omp_get_max_threads();
  if (pairs < threads) threads = static_cast<int>(pairs > 0 ? pairs : 1);
#endif
  const int64_t per_thread = Scratch<T>::size(pa, pb);
  std::vector<T> scratch(static_cast<size_t>(per_thread * threads));  // allocated here, where it may throw

#if defined(WMF_WITH_OPENMP)
#pragma omp parallel num_threads(threads)
#endif
  {
    int thread = 0;
#if defined(WMF_WITH_OPENMP)
    thread = omp_get_thread_num();
#endif
    Scratch<T> s(scratch.data() + thread * per_thread, pa, pb);
#if defined(WMF_WITH_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t p = 0; p < pairs; ++p) {
      const int64_t n = p / b.count;
      const int64_t m = p % b.count;
      if (symmetric && m <= n) {
        if (m == n) out(n, n) = T(0);
        continue;
      }
      if (s.a_cloud != n) {
        to_soa(a.cloud(n), a.points, std::numeric_limits<T>::infinity(), s.a);
        s.a_cloud = n;
      }
      to_soa(b.cloud(m), b.points, -std::numeric_limits<T>::infinity(), s.b);
      pair_minima_clone(s.a, s.b, s.rowmin, s.colmin);
      const T value = static_cast<T>(mean_of(s.rowmin, a.points, squared) + mean_of(s.colmin, b.points, squared));
      out(n, m) = value;
      if (symmetric) out(m, n) = value;
    }
  }
}

template void chamfer_matrix_cpu<float>(CloudBatch<float>, CloudBatch<float>, bool, bool, Mat<float>);
template void chamfer_matrix_cpu<double>(CloudBatch<double>, CloudBatch<double>, bool, bool, Mat<double>);

}  // namespace wmf
