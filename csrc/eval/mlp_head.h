// mlp_head (issue 5, study_spec §9 item 11): the rest of a two-layer MLP after its first GEMM, for B models at
// once. hidden [S, B * H] float32 holds layer 1's pre-activations (bias included) of every (sample, model);
// this applies the activation, layer 2 (w2 [B, C, H], b2 [B, C]), and writes predictions [B, S] int64 (argmax,
// the first maximum on ties, as torch.argmax) and nll [B, S] float32 (cross-entropy of labels [S] int64,
// log-sum-exp in float32, as torch). Fusing these passes avoids three [B, S, *] temporaries. H, C <= 256.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/hostdevice.h"
#include "common/views.h"

namespace wmf {

enum class Activation : int { kReLU = 0, kLeakyReLU = 1, kTanh = 2, kGELU = 3, kSigmoid = 4 };

// torch's defaults: LeakyReLU slope 0.01, exact (erf) GELU.
WMF_HD float activate(float x, Activation act) {
  switch (act) {
    case Activation::kLeakyReLU:
      return x > 0.0f ? x : 0.01f * x;
    case Activation::kTanh:
      return tanhf(x);
    case Activation::kGELU:
      return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case Activation::kSigmoid:
      return 1.0f / (1.0f + expf(-x));
    default:
      return x > 0.0f ? x : 0.0f;
  }
}

struct MlpHead {
  ConstMat<float> hidden;  // [S, B * H]
  const float* w2;         // [B, C, H] contiguous
  const float* b2;         // [B, C]
  const int64_t* labels;   // [S]
  int64_t models, width, classes;  // B, H, C
  Activation act;
};

constexpr int kMaxHeadWidth = 256;    // H
constexpr int kMaxHeadClasses = 256;  // C

// One (model, sample): returns the prediction and writes the sample's loss (float32 throughout, as torch's
// cross_entropy on float32 logits; log-sum-exp around the maximum).
WMF_HD int64_t mlp_head_one(const MlpHead& p, int64_t b, int64_t s, float* nll) {
  float h[kMaxHeadWidth];
  float logits[kMaxHeadClasses];
  const float* pre = p.hidden.row(s) + b * p.width;
  for (int64_t j = 0; j < p.width; ++j) h[j] = activate(pre[j], p.act);
  const float* w = p.w2 + b * p.classes * p.width;
  const float* bias = p.b2 + b * p.classes;
  int64_t best = 0;
  for (int64_t c = 0; c < p.classes; ++c) {
    float z = bias[c];
    for (int64_t j = 0; j < p.width; ++j) z += w[c * p.width + j] * h[j];
    logits[c] = z;
    if (z > logits[best]) best = c;  // strict: the first maximum wins, as torch.argmax
  }
  float sum = 0.0f;
  for (int64_t c = 0; c < p.classes; ++c) sum += expf(logits[c] - logits[best]);
  *nll = logits[best] + logf(sum) - logits[p.labels[s]];
  return best;
}

void mlp_head_cpu(MlpHead head, Mat<int64_t> predictions, Mat<float> nll);
void mlp_head_cuda(MlpHead head, Mat<int64_t> predictions, Mat<float> nll, CudaCtx ctx);

}  // namespace wmf
