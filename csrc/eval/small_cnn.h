// small_cnn_logits (issue 5, study_spec §9 item 10): logits of B small CNNs (the Hyper-Representations zoo family)
// on S shared inputs, every model's whole forward fused per tile of samples so no [B, S, C, H, W] activation is
// ever stored (the per-model loop and grouped convolutions are bound by writing and re-reading those maps).
//
// The network is a list of layers applied in order to each sample's map [C][H][W] (C-major, so a flatten into a
// Linear layer reads it as it lies):
//   kConv:    Conv2d, stride 1, dilation 1, one group, square kernel, zero padding `pad` on every side;
//             weight [out_c, in_c, k, k] and bias [out_c] at the given offsets of the model's flat row.
//   kMaxPool: MaxPool2d with kernel = stride = `k`, no padding (out = floor(in / k)).
//   kAct:     ReLU (act 0) or LeakyReLU with slope 0.01 (act 1), elementwise.
//   kLinear:  weight [out_c, in_c] and bias [out_c] (in_c = the incoming map's size; h = w = 1).
// Shapes are checked in Python (it derives them from the template); the last layer's out_c is C.
//
// weights [B, D] float32 (rows contiguous), inputs [S, in_c * in_h * in_w] float32 (rows contiguous),
// logits [B, S, C] float32. Sums run in a fixed order (bias, then input channel, kernel row, kernel column),
// which differs from oneDNN's: Python compares near-ties of these logits with the per-model forward. A NaN in a
// pooled window may be dropped by the maximum; Python sends models or inputs with non-finite values to the
// per-model forward as a whole.
#pragma once
#include <cstdint>

#include "common/lanes.h"
#include "common/views.h"

namespace wmf {

enum class CnnOp : int32_t { kConv = 0, kMaxPool = 1, kAct = 2, kLinear = 3 };

struct CnnLayer {
  CnnOp op;
  int32_t act;                    // kAct: 0 ReLU, 1 LeakyReLU(0.01)
  int32_t in_c, in_h, in_w;       // incoming map
  int32_t out_c, out_h, out_w;    // outgoing map
  int32_t kernel, pad;            // kConv: k, padding; kMaxPool: k
  int64_t weight_offset, bias_offset;  // kConv, kLinear: offsets in the model's flat row
};

struct SmallCnn {
  const CnnLayer* layers;
  int32_t count;
  int64_t max_map;  // the largest map of any layer (values per sample), for scratch sizing
};

// One layer for the samples of one tile: `in` and `out` hold one lane vector per map value.
template <class L>
inline void cnn_layer(const CnnLayer& layer, const float* row, const L* in, L* out) {
  switch (layer.op) {
    case CnnOp::kConv: {
      const float* weight = row + layer.weight_offset;
      const float* bias = row + layer.bias_offset;
      const int k = layer.kernel;
      for (int oc = 0; oc < layer.out_c; ++oc)
        for (int oh = 0; oh < layer.out_h; ++oh)
          for (int ow = 0; ow < layer.out_w; ++ow) {
            L acc = L{} + bias[oc];
            for (int ic = 0; ic < layer.in_c; ++ic) {
              const float* w = weight + (static_cast<int64_t>(oc) * layer.in_c + ic) * k * k;
              const L* plane = in + static_cast<int64_t>(ic) * layer.in_h * layer.in_w;
              for (int kh = 0; kh < k; ++kh) {
                const int ih = oh + kh - layer.pad;
                if (ih < 0 || ih >= layer.in_h) continue;
                for (int kw = 0; kw < k; ++kw) {
                  const int iw = ow + kw - layer.pad;
                  if (iw < 0 || iw >= layer.in_w) continue;
                  acc = acc + plane[ih * layer.in_w + iw] * w[kh * k + kw];
                }
              }
            }
            out[(static_cast<int64_t>(oc) * layer.out_h + oh) * layer.out_w + ow] = acc;
          }
      return;
    }
    case CnnOp::kMaxPool: {
      const int k = layer.kernel;
      for (int c = 0; c < layer.out_c; ++c)
        for (int oh = 0; oh < layer.out_h; ++oh)
          for (int ow = 0; ow < layer.out_w; ++ow) {
            const L* plane = in + static_cast<int64_t>(c) * layer.in_h * layer.in_w;
            L best = plane[(oh * k) * layer.in_w + ow * k];
            for (int kh = 0; kh < k; ++kh)
              for (int kw = 0; kw < k; ++kw) {
                const L v = plane[(oh * k + kh) * layer.in_w + ow * k + kw];
                best = lane_select(v > best, v, best);
              }
            out[(static_cast<int64_t>(c) * layer.out_h + oh) * layer.out_w + ow] = best;
          }
      return;
    }
    case CnnOp::kAct: {
      const int64_t size = static_cast<int64_t>(layer.in_c) * layer.in_h * layer.in_w;
      for (int64_t i = 0; i < size; ++i)
        out[i] = layer.act == 0 ? lane_select(in[i] <= 0.0f, L{}, in[i]) : lane_select(in[i] > 0.0f, in[i], in[i] * 0.01f);
      return;
    }
    case CnnOp::kLinear: {
      const float* weight = row + layer.weight_offset;
      const float* bias = row + layer.bias_offset;
      for (int o = 0; o < layer.out_c; ++o) {
        const float* w = weight + static_cast<int64_t>(o) * layer.in_c;
        L acc = L{} + bias[o];
        for (int i = 0; i < layer.in_c; ++i) acc = acc + in[i] * w[i];
        out[o] = acc;
      }
      return;
    }
  }
}

void small_cnn_logits_cpu(SmallCnn net, ConstMat<float> weights, ConstMat<float> inputs, Mat<float> logits);

}  // namespace wmf
