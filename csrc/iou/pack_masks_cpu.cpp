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

void pack_masks_cpu(ConstMat<uint8_t> masks, Mat<int64_t> words) {
  WMF_CHECK(masks.col_stride == 1, "masks must have unit column stride");
  pack_rows(masks.rows, masks.cols, words, [&](int64_t i, int64_t t) { return masks(i, t) != 0; });
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
