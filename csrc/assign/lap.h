// linear_assignment (issue 9): B independent square linear assignment problems, minimised.
// For every problem b with costs C = costs[b] [n, n]:
//   perm[b, i] = the column assigned to row i, a permutation of 0..n-1 minimising sum_i C[i, perm[b, i]];
//   total[b]   = sum_i C[i, perm[b, i]], in float64, rows added in order 0..n-1.
// This is scipy's convention: with r, c = scipy.optimize.linear_sum_assignment(C) (r is 0..n-1), perm = c, and
// the totals are equal up to the order of the float64 sum.
//
// Algorithm (the same on both backends: lap_solve below is shared verbatim), O(n^3), entirely in float64 (float32
// costs are widened on load), deterministic: Jonker-Volgenant's column reduction (v[j] = min_i C[i, j]; each column
// takes its argmin row if that row is free), then, for every row left free in order, a shortest augmenting path
// with row and column potentials, as in Crouse 2016 and scipy's solver: a Dijkstra search over the reduced costs
// C[i, j] - u[i] - v[j] >= 0 from the free row to a free column, then the potential update that keeps every
// reduced cost non-negative and those on the matching at zero, then the augmentation.
//
// Ties: when several assignments are optimal, the one returned is fixed by the scan rules (argmin rows: lowest
// index; the search keeps columns in a "todo" list initialised in reverse order and removed by swapping with the
// last; on equal path lengths a free column beats an assigned one, otherwise the first in todo order). These
// differ from scipy's (no column reduction there), so on ties perm may differ from scipy's; the total does not.
// Without ties the optimum is unique and perm equals scipy's.
//
// Inputs: costs [count, n, n] contiguous, T = float or double, n >= 1, every entry finite and |C| small enough
// that sums of 2n entries cannot overflow float64 (the Python layer checks both; with finite costs every problem
// is feasible). perm [count, n] int64 and total [count] float64, contiguous.
// Memory: lap_work_bytes(n) of scratch per concurrently solved problem (about 42 n bytes): the CPU allocates one
// per thread before its loop, CUDA keeps it in local memory for n <= kLapLocalMaxN and otherwise takes one slot per
// thread from a byte tensor Python allocates (`scratch`, any number of slots >= 1, a multiple of
// lap_work_bytes(n) bytes). Nothing is allocated per problem.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/hostdevice.h"
#include "common/views.h"

namespace wmf {

// A batch of square cost matrices [count, n, n], contiguous.
template <class T>
struct CostBatch {
  const T* data;
  int64_t count;
  int64_t n;
  WMF_HD const T* problem(int64_t b) const { return data + b * n * n; }
};

// Largest n that CUDA solves with scratch in local memory (no scratch tensor needed).
constexpr int64_t kLapLocalMaxN = 32;

// Scratch of one problem: three float64 arrays, four int32 arrays, 8-byte aligned (a multiple of 8 bytes).
WMF_HD int64_t lap_work_bytes(int64_t n) { return (3 * 8 * n + 4 * 4 * n + 7) / 8 * 8; }

struct LapWork {
  double* u;          // row potentials
  double* v;          // column potentials
  double* dist;       // shortest path length to each column in the current search
  int32_t* path;      // predecessor row of each column in the current search
  int32_t* col4row;   // the matching, row -> column (-1: free)
  int32_t* row4col;   // the matching, column -> row (-1: free)
  int32_t* todo;      // [0, remaining) columns not yet scanned, [remaining, n) scanned
};

// The work arrays carved out of lap_work_bytes(n) bytes at an 8-byte aligned address.
WMF_HD LapWork lap_work_at(unsigned char* base, int64_t n) {
  double* d = reinterpret_cast<double*>(base);
  int32_t* i = reinterpret_cast<int32_t*>(d + 3 * n);
  return {d, d + n, d + 2 * n, i, i + n, i + 2 * n, i + 3 * n};
}

// Solves one problem: c is a row-major [n, n] matrix, perm receives row -> column, the return value is the total.
// Finite costs assumed (see above): the loops always find a free column.
template <class T>
WMF_HD double lap_solve(const T* c, int32_t n, LapWork w, int64_t* perm) {
  const double inf = static_cast<double>(INFINITY);
  for (int32_t k = 0; k < n; ++k) {
    w.u[k] = 0.0;
    w.col4row[k] = -1;
    w.row4col[k] = -1;
  }
  // Column reduction (Jonker-Volgenant's initialisation): v[j] = min_i C[i, j] keeps every reduced cost
  // C[i, j] - u[i] - v[j] >= 0 (exactly so in floating point: x - min >= 0), and column j is matched to its
  // argmin row (lowest i on ties) when that row is still free: a zero reduced cost, as the invariant requires.
  // Most rows of a random problem are matched here; only the rest need an augmenting path.
  for (int32_t j = n - 1; j >= 0; --j) {
    double best = static_cast<double>(c[j]);
    int32_t arg = 0;
    for (int32_t r = 1; r < n; ++r) {
      const double x = static_cast<double>(c[static_cast<int64_t>(r) * n + j]);
      if (x < best) {
        best = x;
        arg = r;
      }
    }
    w.v[j] = best;
    if (w.col4row[arg] < 0) {
      w.col4row[arg] = j;
      w.row4col[j] = arg;
    }
  }
  for (int32_t row = 0; row < n; ++row) {
    if (w.col4row[row] >= 0) continue;
    // Dijkstra from `row` over reduced costs, until the nearest unscanned column is free (the sink).
    for (int32_t k = 0; k < n; ++k) {
      w.dist[k] = inf;  // path[k] is written before it is read: when dist[k] first becomes finite
      w.todo[k] = n - 1 - k;
    }
    int32_t remaining = n;
    int32_t i = row;
    int32_t sink = -1;
    double reached = 0.0;  // length of the path to the column scanned last
    while (sink < 0) {
      const T* ci = c + static_cast<int64_t>(i) * n;
      const double ui = w.u[i];
      double lowest = inf;
      int32_t at = -1;
      for (int32_t t = 0; t < remaining; ++t) {
        const int32_t j = w.todo[t];
        // Written as selects, not branches: the comparisons are data-dependent and mispredict often.
        const double r = reached + static_cast<double>(ci[j]) - ui - w.v[j];
        const bool closer = r < w.dist[j];
        const double d = closer ? r : w.dist[j];
        w.dist[j] = d;
        w.path[j] = closer ? i : w.path[j];
        const bool take = d < lowest || (d == lowest && w.row4col[j] < 0);
        lowest = take ? d : lowest;
        at = take ? t : at;
      }
      reached = lowest;
      const int32_t j = w.todo[at];
      if (w.row4col[j] < 0) {
        sink = j;
      } else {
        i = w.row4col[j];
      }
      w.todo[at] = w.todo[--remaining];
      w.todo[remaining] = j;  // scanned columns collect at the end of todo
    }
    // Potentials: every scanned column j (other than the sink, whose dist is `reached`) and its matched row move
    // by reached - dist[j]; the new row by reached. Reduced costs stay >= 0 and the path's become 0.
    w.u[row] += reached;
    for (int32_t t = remaining; t < n; ++t) {
      const int32_t j = w.todo[t];
      if (j == sink) continue;
      const double delta = reached - w.dist[j];
      w.u[w.row4col[j]] += delta;
      w.v[j] -= delta;
    }
    // Augment along the path back from the sink.
    int32_t j = sink;
    for (;;) {
      const int32_t r = w.path[j];
      w.row4col[j] = r;
      const int32_t previous = w.col4row[r];
      w.col4row[r] = j;
      if (r == row) break;
      j = previous;
    }
  }
  double total = 0.0;
  for (int32_t r = 0; r < n; ++r) {
    perm[r] = w.col4row[r];
    total += static_cast<double>(c[static_cast<int64_t>(r) * n + w.col4row[r]]);
  }
  return total;
}

template <class T>
void linear_assignment_cpu(CostBatch<T> costs, Mat<int64_t> perm, Vec<double> total);

// scratch: nullptr when costs.n <= kLapLocalMaxN; else scratch_bytes bytes on the device (>= lap_work_bytes(n)).
template <class T>
void linear_assignment_cuda(CostBatch<T> costs, Mat<int64_t> perm, Vec<double> total, unsigned char* scratch,
                            int64_t scratch_bytes, CudaCtx ctx);

}  // namespace wmf
