#include <cstring>

#include "common/check.h"
#include "iou/bitmask.h"
#include "iou/pack_masks.h"
#include "iou/popcount_cpu.h"

namespace wmf {

namespace {

template <class Predicate>
void pack_rows(int64_t rows, int64_t n_bits, Mat<int64_t> words, Predicate is_set) {
  WMF_CHECK(words.rows == rows && words.cols == (n_bits + 63) / 64 && words.col_stride == 1,
            "words must be [N, ceil(S / 64)] row-major");
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t w = 0; w < words.cols; ++w)
      words(i, w) = static_cast<int64_t>(pack_word(w, n_bits, [&](int64_t t) { return is_set(i, t); }));
}

}  // namespace

// Eight 0/1 bytes to eight bits, byte j to bit j: the multiply moves byte j's bit to bit 56 + j and, since no two
// partial products share a bit, nothing carries into the top byte.
inline uint64_t pack_eight_bytes(const uint8_t* bytes) {
  uint64_t chunk;
  std::memcpy(&chunk, bytes, sizeof(chunk));
  return (chunk * 0x0102040810204080ULL) >> 56;
}

void pack_masks_cpu(ConstMat<uint8_t> masks, Mat<int64_t> words) {
  WMF_CHECK(masks.col_stride == 1, "masks must have unit column stride");
  WMF_CHECK(words.rows == masks.rows && words.cols == (masks.cols + 63) / 64 && words.col_stride == 1,
            "words must be [N, ceil(S / 64)] row-major");
  const int64_t full_words = masks.cols / 64;
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (int64_t i = 0; i < masks.rows; ++i) {
    const uint8_t* row = masks.row(i);
    for (int64_t w = 0; w < full_words; ++w) {  // torch bools are bytes 0 or 1, as the trick needs
      uint64_t word = 0;
      for (int b = 0; b < 8; ++b) word |= pack_eight_bytes(row + w * 64 + b * 8) << (8 * b);
      words(i, w) = static_cast<int64_t>(word);
    }
    if (full_words < words.cols)
      words(i, full_words) = static_cast<int64_t>(pack_word(full_words, masks.cols, [&](int64_t t) { return row[t] != 0; }));
  }
}

template <class I>
void error_masks_cpu(ConstMat<I> predictions, const I* labels, Mat<int64_t> words) {
  WMF_CHECK(predictions.col_stride == 1, "predictions must have unit column stride");
  pack_rows(predictions.rows, predictions.cols, words,
            [&](int64_t i, int64_t t) { return predictions(i, t) != labels[t]; });
}

void mask_counts_cpu(ConstMat<int64_t> words, Vec<int64_t> counts) {
  WMF_CHECK(counts.size == words.rows && words.col_stride == 1, "counts need one entry per row-major row");
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (int64_t i = 0; i < words.rows; ++i) counts[i] = popcount(words.row(i), words.cols);
}

template void error_masks_cpu<int32_t>(ConstMat<int32_t>, const int32_t*, Mat<int64_t>);
template void error_masks_cpu<int64_t>(ConstMat<int64_t>, const int64_t*, Mat<int64_t>);

}  // namespace wmf
