// Per-query state of the exact nearest-neighbour search (issue 3), carried from the scan over GEMM tiles to
// the exact re-rank. All arrays are allocated by Python on the input's device; row q belongs to query q.
//
// Invariant after scanning any prefix of the reference rows:
//   bound_heap[q] holds the K smallest upper bounds `hi` seen (a max-heap, +inf padded), so tau = bound_heap[q][0]
//   is >= the true K-th smallest distance over the prefix, and therefore over all rows;
//   the candidate list holds, in increasing reference index, every row of the prefix whose lower bound `lo` was
//   <= tau when it was seen (tau only falls, so no row of the true top-K is ever missing), unless overflow[q] is
//   set, in which case the re-rank examines every reference row of that query instead.
#pragma once
#include <cstdint>

#include "common/hostdevice.h"

namespace wmf {

struct CandidateState {
  double* bound_heap;   // [Q, K] float64, initialised to +inf
  int64_t* cand_index;  // [Q, C] global reference index
  double* cand_lower;   // [Q, C] lower bound of the squared distance
  int64_t* cand_count;  // [Q]    initialised to 0
  uint8_t* overflow;    // [Q]    initialised to 0
  int64_t k;            // K >= 1
  int64_t capacity;     // C >= K
};

// Replaces the root of a max-heap of size k by v (v < heap[0]) and restores the heap.
WMF_HD void heap_replace_top(double* heap, int64_t k, double v) {
  int64_t i = 0;
  while (true) {
    const int64_t left = 2 * i + 1;
    if (left >= k) break;
    const int64_t right = left + 1;
    const int64_t big = (right < k && heap[right] > heap[left]) ? right : left;
    if (heap[big] <= v) break;
    heap[i] = heap[big];
    i = big;
  }
  heap[i] = v;
}

// Inserts (d, idx) into the ascending list of n entries (capacity k); returns the new n. Entries arrive in
// increasing idx, so an equal distance goes after the existing ones: ties keep the lowest index.
WMF_HD int64_t topk_insert(double* dist, int64_t* index, int64_t n, int64_t k, double d, int64_t idx) {
  if (n == k && !(d < dist[k - 1])) return n;
  int64_t pos = (n < k) ? n : k - 1;
  while (pos > 0 && dist[pos - 1] > d) {
    dist[pos] = dist[pos - 1];
    index[pos] = index[pos - 1];
    --pos;
  }
  dist[pos] = d;
  index[pos] = idx;
  return (n < k) ? n + 1 : n;
}

}  // namespace wmf
