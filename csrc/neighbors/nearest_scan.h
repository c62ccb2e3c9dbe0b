// nearest_scan (issue 3): the candidate step of `nearest`. Consumes one GEMM tile gram [Qb, Rt] (query-major;
// gram(i, j) = a_i . b_j of the operand rows of query q_index[i] and reference r_offset + j, global indices) and
// updates the CandidateState of the Qb queries (see candidate_state.h for the invariant). exclude_self skips the
// pair whose global query and reference indices are equal (by index, never by value). An overflowed query keeps
// tightening its bound heap, so a second scan can start from its final tau. Never holds more than the tile.
#pragma once
#include <cstdint>

#include "common/views.h"
#include "distances/gram_bounds.h"
#include "neighbors/candidate_state.h"

namespace wmf {

template <class G>
void nearest_scan_cpu(ConstMat<G> gram, RowNorms query, RowNorms ref, GramErrorModel model, const int64_t* q_index,
                      int64_t r_offset, bool exclude_self, CandidateState state);

template <class G>
void nearest_scan_cuda(ConstMat<G> gram, RowNorms query, RowNorms ref, GramErrorModel model, const int64_t* q_index,
                       int64_t r_offset, bool exclude_self, CandidateState state, CudaCtx ctx);

// Drops candidates whose lower bound exceeds tau, keeping order; returns the new count.
WMF_HD int64_t compact_candidates(int64_t* index, double* lower, int64_t count, double tau) {
  int64_t kept = 0;
  for (int64_t c = 0; c < count; ++c) {
    if (lower[c] <= tau) {
      index[kept] = index[c];
      lower[kept] = lower[c];
      ++kept;
    }
  }
  return kept;
}

// One query row's scan state, loaded from CandidateState, updated pair by pair, stored back. Shared by both
// backends: a CPU loop iteration owns a row, or lane 0 of a CUDA warp.
struct RowScan {
  double* heap;
  int64_t* cand_index;
  double* cand_lower;
  int64_t count;
  int64_t k;
  int64_t capacity;
  double tau;  // heap[0], kept in a register: the heap changes only in visit()
  bool overflow;

  WMF_HD RowScan(const CandidateState& s, int64_t i)
      : heap(s.bound_heap + i * s.k),
        cand_index(s.cand_index + i * s.capacity),
        cand_lower(s.cand_lower + i * s.capacity),
        count(s.cand_count[i]),
        k(s.k),
        capacity(s.capacity),
        tau(heap[0]),
        overflow(s.overflow[i] != 0) {}

  // A pair whose lower bound is <= tau (the caller filters the far majority).
  WMF_HD void visit(const SqdistBracket& b, int64_t global_ref) {
    if (b.hi < tau) {
      heap_replace_top(heap, k, b.hi);
      tau = heap[0];
    }
    if (overflow || b.lo > tau) return;
    if (count == capacity) {
      // Amortised O(1): after a compaction at least half of the list is free, or the query gives up on lists.
      count = compact_candidates(cand_index, cand_lower, count, tau);
      if (2 * count > capacity) {
        overflow = true;
        return;
      }
    }
    cand_index[count] = global_ref;
    cand_lower[count] = b.lo;
    ++count;
  }

  WMF_HD void store(const CandidateState& s, int64_t i) const {
    s.cand_count[i] = count;
    s.overflow[i] = overflow ? 1 : 0;
  }
};

}  // namespace wmf
