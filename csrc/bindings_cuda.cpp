// Registers the *_cuda entries (compiled only when CMake enabled CUDA) and the device probe.
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "assign/lap.h"
#include "binders.h"
#include "chamfer/chamfer.h"
#include "distances/pairwise_from_gram.h"
#include "distances/row_norms.h"
#include "eval/mlp_head.h"
#include "iou/iou_matrix.h"
#include "iou/max_iou.h"
#include "iou/pack_masks.h"
#include "neighbors/nearest_rerank.h"
#include "neighbors/nearest_scan.h"

namespace py = pybind11;

namespace wmf {

void register_cuda(py::module_& m, py::dict& info) {
  info["cuda"] = true;
  info["cuda_runtime"] = CUDART_VERSION;
  info["cuda_archs"] = WMF_CUDA_ARCHS;

  def_row_norms(m, "row_norms_cuda",
                [](auto x, auto sq, auto n, bool nz, int* bad, CudaCtx ctx) { row_norms_cuda(x, sq, n, nz, bad, ctx); });
  def_pairwise_from_gram(m, "pairwise_from_gram_cuda",
                         [](auto g, auto q, auto r, auto model, double tol, auto output, auto out, CudaCtx ctx) {
                           pairwise_from_gram_cuda(g, q, r, model, tol, output, out, ctx);
                         });
  def_nearest_scan(m, "nearest_scan_cuda",
                   [](auto g, auto q, auto r, auto model, const int64_t* qi, int64_t ro, bool ex, auto s, CudaCtx ctx) {
                     nearest_scan_cuda(g, q, r, model, qi, ro, ex, s, ctx);
                   });
  def_nearest_rerank(m, "nearest_rerank_cuda",
                     [](auto q, auto qs, auto r, auto rs, const int64_t* qi, bool ex, auto s, auto od, auto oi, auto out,
                        auto ov, int* sr, CudaCtx ctx) {
                       nearest_rerank_cuda(q, qs, r, rs, qi, ex, s, od, oi, out, ov, sr, ctx);
                     });

  def_pack_masks(m, "pack_masks_cuda", [](auto mv, auto wv, CudaCtx ctx) { pack_masks_cuda(mv, wv, ctx); });
  def_error_masks(m, "error_masks_cuda", [](auto pv, auto lv, auto wv, CudaCtx ctx) { error_masks_cuda(pv, lv, wv, ctx); });
  def_mask_counts(m, "mask_counts_cuda", [](auto wv, auto cv, CudaCtx ctx) { mask_counts_cuda(wv, cv, ctx); });
  def_iou_matrix(m, "iou_matrix_cuda",
                 [](auto a, auto ca, auto b, auto cb, auto out, CudaCtx ctx) { iou_matrix_cuda(a, ca, b, cb, out, ctx); });
  def_max_iou(m, "max_iou_cuda", [](auto q, auto cq, auto r, auto cr, bool ex, auto top, CudaCtx ctx) {
    max_iou_cuda(q, cq, r, cr, ex, top, ctx);
  });
  def_chamfer_matrix(m, "chamfer_matrix_cuda", [](auto a, auto b, bool sq, bool sym, auto out, CudaCtx ctx) {
    chamfer_matrix_cuda(a, b, sq, sym, out, ctx);
  });

  def_mlp_head(m, "mlp_head_cuda", [](auto head, auto cert, auto out, CudaCtx ctx) {
    mlp_head_cuda(head, cert, out, ctx);
  });
  def_linear_assignment(m, "linear_assignment_cuda",
                        [](auto c, auto p, auto t, unsigned char* s, int64_t sb, CudaCtx ctx) {
                          linear_assignment_cuda(c, p, t, s, sb, ctx);
                        });
  // Never raises: "no driver" and "insufficient driver" become a count of 0 and the reason.
  m.def(
      "cuda_device_count",
      []() -> std::pair<int, std::string> {
        int count = 0;
        const cudaError_t err = cudaGetDeviceCount(&count);
        if (err != cudaSuccess) {
          cudaGetLastError();  // clear the sticky-free error so later calls start clean
          return {0, cudaGetErrorString(err)};
        }
        return {count, ""};
      },
      "Number of visible CUDA devices and, when 0 because of an error, the reason.");
}

}  // namespace wmf
