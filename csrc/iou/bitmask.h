// Shared pieces of the bit-mask ops (issue 4, study_spec §2.4). Masks are int64 words [N, W], W = ceil(S / 64);
// bit t % 64 of word t / 64 is sample t; padding bits are 0 (Python guarantees it), so no popcount needs a mask.
//
// IoU(a, b) = |a & b| / |a | b|, and 0 when both sets are empty (the study's + 1e-8 in the denominator gives 0
// there too). Counts are exact integers; values are compared as exact rationals (cross-multiplied in int64,
// S < 2^31) so ties are real ties, broken by the lowest index. The reported float32 value is
// (float)((double)inter / (double)union) on every backend, so backends agree bit for bit.
#pragma once
#include <cstdint>

#include "common/hostdevice.h"

namespace wmf {

WMF_HD int popcount64(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __popcll(x);
#else
  return __builtin_popcountll(x);
#endif
}

// An IoU as the exact pair of counts.
struct IouCount {
  int64_t inter;
  int64_t uni;
};

WMF_HD IouCount iou_count(int64_t inter, int64_t count_a, int64_t count_b) {
  return {inter, count_a + count_b - inter};
}

WMF_HD float iou_value(IouCount c) {
  return c.uni == 0 ? 0.0f : static_cast<float>(static_cast<double>(c.inter) / static_cast<double>(c.uni));
}

// a > b as rationals; an empty union is the value 0 = 0 / 1.
WMF_HD bool iou_greater(IouCount a, IouCount b) {
  const int64_t ua = a.uni == 0 ? 1 : a.uni;
  const int64_t ub = b.uni == 0 ? 1 : b.uni;
  return a.inter * ub > b.inter * ua;
}

// Inserts (c, idx) into the list of n entries (capacity k) sorted by IoU descending; returns the new n. Entries
// arrive in increasing idx, so an equal IoU goes after the existing ones: ties keep the lowest index.
WMF_HD int64_t topk_insert_iou(int64_t* inter, int64_t* uni, int64_t* index, int64_t n, int64_t k, IouCount c,
                               int64_t idx) {
  if (n == k && !iou_greater(c, IouCount{inter[k - 1], uni[k - 1]})) return n;
  int64_t pos = (n < k) ? n : k - 1;
  while (pos > 0 && iou_greater(c, IouCount{inter[pos - 1], uni[pos - 1]})) {
    inter[pos] = inter[pos - 1];
    uni[pos] = uni[pos - 1];
    index[pos] = index[pos - 1];
    --pos;
  }
  inter[pos] = c.inter;
  uni[pos] = c.uni;
  index[pos] = idx;
  return (n < k) ? n + 1 : n;
}

// The word w of a packed row whose sample t is set iff is_set(t), for t < n_bits.
template <class Predicate>
WMF_HD uint64_t pack_word(int64_t w, int64_t n_bits, Predicate is_set) {
  uint64_t word = 0;
  const int64_t start = w * 64;
  const int64_t stop = start + 64 < n_bits ? start + 64 : n_bits;
  // Branch-free, so the compiler can vectorise the 64 tests of a full word.
  for (int64_t t = start; t < stop; ++t) word |= static_cast<uint64_t>(is_set(t) ? 1 : 0) << (t - start);
  return word;
}

}  // namespace wmf
