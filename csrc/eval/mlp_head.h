// mlp_head (issue 5, study_spec §9 item 11): the rest of a two-layer MLP after its first GEMM, for B models at
// once, with a certificate that each prediction equals what any float32 evaluation order would predict.
//
// hidden [B * H, S] float32 holds layer 1's outputs (bias included): row b * H + j is unit j of model b over the
// S samples, so a tile of consecutive samples is contiguous. For ReLU and LeakyReLU they are pre-activations
// and the head applies the activation; tanh, GELU and sigmoid are applied by torch beforehand (its vectorised
// transcendentals, the per-model forward's own functions). The head then applies layer 2
// (w2 [B, C, H], b2 [B, C]) and writes, per (model, sample):
//   predictions [B, S] int64: the argmax of the logits, the first maximum on ties (as torch.argmax);
//   nll [B, S] float32: cross-entropy of labels [S] int64, log-sum-exp around the maximum (float32, as torch);
//   uncertain [B, S] uint8: 1 unless the argmax is certified (below). H, C <= 256.
//
// Certificate. Let z*_c be the exact logits of the float32 weights and inputs. Ours (z_c) and the per-model
// torch forward (z'_c, any summation order, FMA or not) both satisfy |z - z*| <= E_c, where with
// e_j = unit_error_scale[b, j] * input_norms[s] + unit_error_offset[b, j] (Python passes
// gamma_{I+1} ||W1_j|| and gamma_{I+1} |b1_j|, a bound on layer 1's rounding by Cauchy-Schwarz),
//   da_j = L e_j + activation_ulps * u |a_j|            (L: the activation's Lipschitz constant)
//   E_c  = dot_error (|b2_c| + sum_j |w2_cj| |a_j|) + sum_j |w2_cj| da_j
// (dot_error: Python's gamma_{H+1} for torch's float32 matmul). If for every c != argmax t
//   z_t - z_c > kCertificateSlack * 2 (E_t + E_c)
// then the other evaluation's argmax is t as well; kCertificateSlack absorbs the second-order terms (errors of
// the bounds themselves). Everything else, ties and non-finite logits included, is marked uncertain and Python
// recomputes it with the per-model forward.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "common/hostdevice.h"
#include "common/lanes.h"
#include "common/views.h"

namespace wmf {

enum class Activation : int { kReLU = 0, kLeakyReLU = 1, kTanh = 2, kGELU = 3, kSigmoid = 4 };

// ReLU and LeakyReLU (torch's default slope 0.01) are applied here, fused, passing NaN on as torch does; tanh,
// GELU and sigmoid arrive applied (see the contract above), so they are the identity here.
template <Activation kAct, class L>
WMF_HD L activate_lanes(L x) {
  if constexpr (kAct == Activation::kReLU) return lane_select(x <= 0.0f, L{}, x);
  if constexpr (kAct == Activation::kLeakyReLU) return lane_select(x > 0.0f, x, x * 0.01f);
  return x;
}

// max |activation'(x)|: GELU's derivative peaks at 1.1289 (x ~ 2.42), sigmoid's at 1/4.
template <Activation kAct>
constexpr float activation_lipschitz() {
  return kAct == Activation::kGELU ? 1.13f : kAct == Activation::kSigmoid ? 0.25f : 1.0f;
}

// Rounding of one activation value, ours plus the per-model forward's, in units of u = 2^-24 of the result:
// exact for ReLU, one rounding for LeakyReLU, and a generous allowance for torch's vectorised and scalar
// transcendentals (each within a few ulp).
template <Activation kAct>
constexpr float activation_ulps() {
  return kAct == Activation::kReLU ? 0.0f : kAct == Activation::kLeakyReLU ? 2.0f : 16.0f;
}

constexpr float kUnitRoundoff = 5.9604645e-8f;  // 2^-24
constexpr float kCertificateSlack = 1.001f;

struct MlpHead {
  ConstMat<float> hidden;  // [B * H, S]
  const float* w2;         // [B, C, H] contiguous
  const float* b2;         // [B, C]
  const int64_t* labels;   // [S]
  int64_t models, width, classes;  // B, H, C
  Activation act;
};

struct HeadCertificate {
  const float* unit_error_scale;   // [B, H]
  const float* unit_error_offset;  // [B, H]
  const float* input_norms;        // [S]
  float dot_error;                 // gamma_{H+1} of layer 2
};

struct HeadOutputs {
  Mat<int64_t> predictions;  // [B, S]
  Mat<float> nll;            // [B, S]
  Mat<uint8_t> uncertain;    // [B, S]
};

constexpr int kMaxHeadWidth = 256;    // H
constexpr int kMaxHeadClasses = 256;  // C

// The head for the samples [s0, s0 + lanes) of model b, one per lane of L (float on CUDA: one sample; f32x16
// on the CPU: up to 16). Padding lanes compute on zeros and are never written out.
template <class L, Activation kAct>
WMF_HD void mlp_head_tile(const MlpHead& p, const HeadCertificate& cert, int64_t b, int64_t s0, int lanes,
                          const HeadOutputs& out) {
  constexpr float kLipschitz = activation_lipschitz<kAct>();
  const float act_rel = activation_ulps<kAct>() * kUnitRoundoff + cert.dot_error;
  const float* w2 = p.w2 + b * p.classes * p.width;
  const float* b2 = p.b2 + b * p.classes;
  L norms;
  load_lanes(norms, cert.input_norms + s0, lanes);

  // a_j and g_j = dot_error |a_j| + da_j (the certificate above).
  L a[kMaxHeadWidth];
  L g[kMaxHeadWidth];
  for (int64_t j = 0; j < p.width; ++j) {
    L pre;
    load_lanes(pre, p.hidden.row(b * p.width + j) + s0, lanes);
    a[j] = activate_lanes<kAct>(pre);
    g[j] = norms * (kLipschitz * cert.unit_error_scale[b * p.width + j]) +
           kLipschitz * cert.unit_error_offset[b * p.width + j] + act_rel * lane_abs(a[j]);
  }
  // Logits z_c with their bounds E_c, and the argmax (strict: the first maximum wins) with its bound.
  L z[kMaxHeadClasses];
  L bound[kMaxHeadClasses];
  for (int64_t c = 0; c < p.classes; ++c) {
    const float* w = w2 + c * p.width;
    L logit = L{} + b2[c];
    L error = L{} + cert.dot_error * fabsf(b2[c]);
    for (int64_t j = 0; j < p.width; ++j) {
      logit = logit + a[j] * w[j];
      error = error + g[j] * fabsf(w[j]);
    }
    z[c] = logit;
    bound[c] = error;
  }
  L best{}, top = z[0], top_bound = bound[0];
  for (int64_t c = 1; c < p.classes; ++c) {
    const auto higher = z[c] > top;
    best = lane_select(higher, L{} + static_cast<float>(c), best);
    top = lane_select(higher, z[c], top);
    top_bound = lane_select(higher, bound[c], top_bound);
  }
  // Log-sum-exp, and the certificate: every other class trails by more than both bounds. The argmax's own gap
  // is 0 and is exempt; a tie elsewhere has gap 0 and fails; NaN fails every comparison.
  L sum{};
  auto unsure = lane_not(lane_abs(top) <= FLT_MAX);
  for (int64_t c = 0; c < p.classes; ++c) {
    const L gap = top - z[c];
    sum = sum + exp_nonpositive(L{} - gap);
    const auto trails = gap > (top_bound + bound[c]) * (2.0f * kCertificateSlack);
    unsure = unsure | ((best != static_cast<float>(c)) & lane_not(trails));
  }
  for (int l = 0; l < lanes; ++l) {
    const int64_t s = s0 + l;
    out.predictions(b, s) = static_cast<int64_t>(lane_get(best, l));
    out.nll(b, s) = lane_get(top, l) + logf(lane_get(sum, l)) - lane_get(z[p.labels[s]], l);
    out.uncertain(b, s) = lane_get(unsure, l) ? 1 : 0;
  }
}

// mlp_head_tile for the head's activation.
template <class L>
WMF_HD void mlp_head_tile(const MlpHead& p, const HeadCertificate& cert, int64_t b, int64_t s0, int lanes,
                          const HeadOutputs& out) {
  switch (p.act) {
    case Activation::kLeakyReLU:
      return mlp_head_tile<L, Activation::kLeakyReLU>(p, cert, b, s0, lanes, out);
    case Activation::kTanh:
      return mlp_head_tile<L, Activation::kTanh>(p, cert, b, s0, lanes, out);
    case Activation::kGELU:
      return mlp_head_tile<L, Activation::kGELU>(p, cert, b, s0, lanes, out);
    case Activation::kSigmoid:
      return mlp_head_tile<L, Activation::kSigmoid>(p, cert, b, s0, lanes, out);
    default:
      return mlp_head_tile<L, Activation::kReLU>(p, cert, b, s0, lanes, out);
  }
}

// Entry checks shared by both backends (defined in mlp_head_cpu.cpp, which every build compiles).
void check_mlp_head(const MlpHead& head, const HeadOutputs& out);

void mlp_head_cpu(MlpHead head, HeadCertificate cert, HeadOutputs out);
void mlp_head_cuda(MlpHead head, HeadCertificate cert, HeadOutputs out, CudaCtx ctx);

}  // namespace wmf
