// The module `weightmem_fast._C`: one definition per host entry (binders.h), build_info() and __version__.
#include <pybind11/pybind11.h>

#if defined(WMF_WITH_OPENMP)
#include <omp.h>
#endif

#include "assign/lap.h"
#include "binders.h"
#include "chamfer/chamfer.h"
#include "distances/pairwise_from_gram.h"
#include "distances/row_norms.h"
#include "eval/mlp_head.h"
#include "eval/small_cnn.h"
#include "iou/iou_matrix.h"
#include "iou/max_iou.h"
#include "iou/pack_masks.h"
#include "neighbors/nearest_rerank.h"
#include "neighbors/nearest_scan.h"

namespace py = pybind11;

#if defined(WMF_WITH_CUDA)
namespace wmf {
void register_cuda(py::module_& m, py::dict& info);  // bindings_cuda.cpp
}
#endif

PYBIND11_MODULE(_C, m) {
  using namespace wmf;
  m.doc() = "weightmem_fast compiled kernels; call them through weightmem_fast, which validates and allocates.";
  m.attr("__version__") = WMF_VERSION;

  def_row_norms(m, "row_norms_cpu", [](auto x, auto sq, auto n, bool nz, int* bad, CudaCtx) { row_norms_cpu(x, sq, n, nz, bad); });
  def_pairwise_from_gram(m, "pairwise_from_gram_cpu",
                         [](auto g, auto q, auto r, auto model, double tol, auto output, auto out, CudaCtx) {
                           pairwise_from_gram_cpu(g, q, r, model, tol, output, out);
                         });
  def_nearest_scan(m, "nearest_scan_cpu",
                   [](auto g, auto q, auto r, auto model, const int64_t* qi, int64_t ro, bool ex, auto s, CudaCtx) {
                     nearest_scan_cpu(g, q, r, model, qi, ro, ex, s);
                   });
  def_nearest_rerank(m, "nearest_rerank_cpu",
                     [](auto q, auto qs, auto r, auto rs, const int64_t* qi, bool ex, auto s, auto od, auto oi, auto out,
                        auto ov, int* sr, CudaCtx) { nearest_rerank_cpu(q, qs, r, rs, qi, ex, s, od, oi, out, ov, sr); });

  def_pack_masks(m, "pack_masks_cpu", [](auto mv, auto wv, CudaCtx) { pack_masks_cpu(mv, wv); });
  def_error_masks(m, "error_masks_cpu", [](auto pv, auto lv, auto wv, CudaCtx) { error_masks_cpu(pv, lv, wv); });
  def_mask_counts(m, "mask_counts_cpu", [](auto wv, auto cv, CudaCtx) { mask_counts_cpu(wv, cv); });
  def_iou_matrix(m, "iou_matrix_cpu",
                 [](auto a, auto ca, auto b, auto cb, auto out, CudaCtx) { iou_matrix_cpu(a, ca, b, cb, out); });
  def_max_iou(m, "max_iou_cpu", [](auto q, auto cq, auto r, auto cr, bool ex, auto top, CudaCtx) {
    max_iou_cpu(q, cq, r, cr, ex, top);
  });
  def_chamfer_matrix(m, "chamfer_matrix_cpu", [](auto a, auto b, bool sq, bool sym, auto out, CudaCtx) {
    chamfer_matrix_cpu(a, b, sq, sym, out);
  });

  def_mlp_head(m, "mlp_head_cpu", [](auto head, auto cert, auto out, CudaCtx) { mlp_head_cpu(head, cert, out); });
  def_small_cnn_logits(m, "small_cnn_logits_cpu", [](auto net, auto weights, auto inputs, auto logits, CudaCtx) {
    small_cnn_logits_cpu(net, weights, inputs, logits);
  });
  def_linear_assignment(m, "linear_assignment_cpu", [](auto c, auto p, auto t, unsigned char*, int64_t, CudaCtx) {
    linear_assignment_cpu(c, p, t);
  });
  py::dict info;
  info["version"] = WMF_VERSION;
#if defined(__clang__)
  info["compiler"] = "clang " __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = "gcc " __VERSION__;
#else
  info["compiler"] = "unknown";
#endif
  info["cuda"] = false;
  info["cuda_runtime"] = -1;
  info["cuda_archs"] = "";
#if defined(WMF_WITH_CUDA)
  register_cuda(m, info);
#endif
  m.def(
      "build_info",
      [info]() {
        py::dict out(info);
#if defined(WMF_WITH_OPENMP)
        out["openmp"] = omp_get_max_threads();
#else
        out["openmp"] = false;
#endif
        return out;
      },
      "How this extension was built: version, compiler, CUDA runtime and archs, OpenMP threads.");
}
