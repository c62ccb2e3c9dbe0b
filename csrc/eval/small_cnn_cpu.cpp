// Threads over (model, block of samples) tasks; each task runs the whole network on one lane vector of samples at
// a time (common/lanes.h, width picked at run time), in two scratch maps of max_map lane vectors per thread (a
// few hundred KB for the HR CNN: one tile's maps stay in L2).
#include <new>

#include "common/check.h"
#include "common/lane_dispatch.h"
#include "eval/small_cnn.h"

namespace wmf {

namespace {

constexpr int64_t kBlock = 16;  // samples per task: a multiple of every lane count
constexpr std::align_val_t kScratchAlignment{64};

// This thread's scratch of at least `floats` floats, 64-byte aligned: lane vectors are stored with aligned moves,
// and a std::vector of them would get only the baseline target's 16-byte alignment.
float* thread_scratch(size_t floats) {
  struct Buffer {
    float* data = nullptr;
    size_t size = 0;
    ~Buffer() { ::operator delete(data, kScratchAlignment); }
  };
  static thread_local Buffer buffer;
  if (buffer.size < floats) {
    ::operator delete(buffer.data, kScratchAlignment);
    buffer.data = static_cast<float*>(::operator new(floats * sizeof(float), kScratchAlignment));
    buffer.size = floats;
  }
  return buffer.data;
}

template <class L>
struct CnnBlock {
  // Logits of model b on samples [s0, s0 + count).
  static void run(const SmallCnn& net, const ConstMat<float>& weights, const ConstMat<float>& inputs,
                  const Mat<float>& logits, int64_t b, int64_t s0, int64_t count) {
    constexpr int kLanes = lane_count<L>();
    L* scratch = reinterpret_cast<L*>(thread_scratch(static_cast<size_t>(2 * net.max_map * kLanes)));
    const float* row = weights.row(b);
    const int32_t classes = net.layers[net.count - 1].out_c;
    for (int64_t t0 = s0; t0 < s0 + count; t0 += kLanes) {
      const int lanes = static_cast<int>(s0 + count - t0 < kLanes ? s0 + count - t0 : kLanes);
      L* current = scratch;
      L* next = current + net.max_map;
      for (int64_t i = 0; i < inputs.cols; ++i) {  // the tile's inputs, one lane per sample
        L value{};
        for (int l = 0; l < lanes; ++l) value[l] = inputs(t0 + l, i);
        current[i] = value;
      }
      for (int32_t i = 0; i < net.count; ++i) {
        cnn_layer<L>(net.layers[i], row, current, next);
        L* swap = current;
        current = next;
        next = swap;
      }
      for (int l = 0; l < lanes; ++l)
        for (int32_t c = 0; c < classes; ++c) logits(b * inputs.rows + t0 + l, c) = current[c][l];
    }
  }
};

using Dispatch = LaneDispatch<CnnBlock, const SmallCnn&, const ConstMat<float>&, const ConstMat<float>&,
                              const Mat<float>&, int64_t, int64_t, int64_t>;

}  // namespace

void small_cnn_logits_cpu(SmallCnn net, ConstMat<float> weights, ConstMat<float> inputs, Mat<float> logits) {
  WMF_CHECK(net.count >= 1, "the network has no layers");
  WMF_CHECK(weights.col_stride == 1 && inputs.col_stride == 1, "weights and inputs must have contiguous rows");
  WMF_CHECK(logits.rows == weights.rows * inputs.rows && logits.cols == net.layers[net.count - 1].out_c,
            "logits must be [B * S, C]");
  const Dispatch::Fn block = Dispatch::get();
  const int64_t blocks = (inputs.rows + kBlock - 1) / kBlock;
  const int64_t tasks = weights.rows * blocks;
#if defined(WMF_WITH_OPENMP)
#pragma omp parallel for schedule(dynamic, 4)
#endif
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t b = task / blocks;
    const int64_t s0 = (task % blocks) * kBlock;
    block(net, weights, inputs, logits, b, s0, s0 + kBlock < inputs.rows ? kBlock : inputs.rows - s0);
  }
}

}  // namespace wmf
