// Threads over models; each model's samples go in tiles, one sample per lane of a CPU lane vector
// (common/lanes.h, width picked at run time by common/lane_dispatch.h), so the tile arithmetic is vector
// arithmetic. A model's second layer (C * H floats) stays in L1 for all of its tiles.
#include "common/check.h"
#include "common/lane_dispatch.h"
#include "eval/mlp_head.h"

namespace wmf {

namespace {

template <class L>
struct HeadOfModel {
  static void run(const MlpHead& head, const HeadCertificate& cert, int64_t b, const HeadOutputs& out) {
    constexpr int kLanes = lane_count<L>();
    const int64_t samples = head.hidden.cols;
    for (int64_t s0 = 0; s0 < samples; s0 += kLanes) {
      const int lanes = static_cast<int>(samples - s0 < kLanes ? samples - s0 : kLanes);
      mlp_head_tile<L>(head, cert, b, s0, lanes, out);
    }
  }
};

using Dispatch = LaneDispatch<HeadOfModel, const MlpHead&, const HeadCertificate&, int64_t, const HeadOutputs&>;

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
  const Dispatch::Fn head_of_model = Dispatch::get();
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (int64_t b = 0; b < head.models; ++b) head_of_model(head, cert, b, out);
}

}  // namespace wmf
