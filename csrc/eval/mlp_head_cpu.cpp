// Threads over models; each model's samples go in tiles, one sample per lane of a CPU lane vector
// (common/lanes.h), so the tile arithmetic is vector arithmetic. The vector is as wide as the instruction set
// picked at run time: 16 floats with AVX-512, 8 with AVX2 + FMA, else 4 (a vector wider than the registers
// compiles to poor code). flatten inlines the tile into each target's function so it is compiled for that
// target. A model's second layer (C * H floats) stays in L1 for all of its tiles.
#include "common/check.h"
#include "eval/mlp_head.h"

namespace wmf {

namespace {

template <class L>
__attribute__((always_inline)) inline void head_of_model(const MlpHead& head, const HeadCertificate& cert,
                                                         int64_t b, const HeadOutputs& out) {
  constexpr int kLanes = lane_count<L>();
  const int64_t samples = head.hidden.cols;
  for (int64_t s0 = 0; s0 < samples; s0 += kLanes) {
    const int lanes = static_cast<int>(samples - s0 < kLanes ? samples - s0 : kLanes);
    mlp_head_tile<L>(head, cert, b, s0, lanes, out);
  }
}

using HeadFn = void (*)(const MlpHead&, const HeadCertificate&, int64_t, const HeadOutputs&);

__attribute__((flatten)) void head_portable(const MlpHead& head, const HeadCertificate& cert, int64_t b,
                                            const HeadOutputs& out) {
  head_of_model<f32x4>(head, cert, b, out);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2,fma"), flatten)) void head_avx2(const MlpHead& head, const HeadCertificate& cert,
                                                             int64_t b, const HeadOutputs& out) {
  head_of_model<f32x8>(head, cert, b, out);
}

__attribute__((target("avx512f"), flatten)) void head_avx512(const MlpHead& head, const HeadCertificate& cert,
                                                              int64_t b, const HeadOutputs& out) {
  head_of_model<f32x16>(head, cert, b, out);
}

HeadFn pick_head() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return head_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return head_avx2;
  return head_portable;
}
#else
HeadFn pick_head() { return head_portable; }
#endif

}  // namespace

void check_mlp_head(const MlpHead& head, const HeadOutputs& out) {
  WMF_CHECK(head.width >= 1 && head.width <= kMaxHeadWidth, "hidden width must be in [1, 256]; got ", head.width);
  WMF_CHECK(head.classes >= 1 && head.classes <= kMaxHeadClasses, "classes must be in [1, 256]; got ", head.classes);
  WMF_CHECK(head.hidden.rows == head.models * head.width && head.hidden.col_stride == 1, "hidden must be [B * H, S]");
  const int64_t samples = head.hidden.cols;
  WMF_CHECK(out.predictions.rows == head.models && out.predictions.cols == samples, "predictions must be [B, S]");
  WMF_CHECK(out.nll.rows == head.models && out.nll.cols == samples, "nll must be [B, S]");
  WMF_CHECK(out.uncertain.rows == head.models && out.uncertain.cols == samples, "uncertain must be [B, S]");
}

void mlp_head_cpu(MlpHead head, HeadCertificate cert, HeadOutputs out) {
  check_mlp_head(head, out);
  static const HeadFn head_fn = pick_head();
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (int64_t b = 0; b < head.models; ++b) head_fn(head, cert, b, out);
}

}  // namespace wmf
