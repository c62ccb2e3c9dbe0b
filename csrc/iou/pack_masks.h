// Packing (issue 4): pack_masks turns bool masks [N, S] (bytes 0/1, any row stride, col_stride 1) into words
// [N, W]; error_masks packs predictions[i, t] != labels[t] directly, fused with the comparison, for int32 or
// int64 predictions [N, S] and labels [S]; mask_counts gives |row| for every packed row. Padding bits are 0.
#pragma once
#include <cstdint>

#include "common/views.h"

namespace wmf {

void pack_masks_cpu(ConstMat<uint8_t> masks, Mat<int64_t> words);
void pack_masks_cuda(ConstMat<uint8_t> masks, Mat<int64_t> words, CudaCtx ctx);

template <class I>
void error_masks_cpu(ConstMat<I> predictions, const I* labels, Mat<int64_t> words);
template <class I>
void error_masks_cuda(ConstMat<I> predictions, const I* labels, Mat<int64_t> words, CudaCtx ctx);

void mask_counts_cpu(ConstMat<int64_t> words, Vec<int64_t> counts);
void mask_counts_cuda(ConstMat<int64_t> words, Vec<int64_t> counts, CudaCtx ctx);

}  // namespace wmf
