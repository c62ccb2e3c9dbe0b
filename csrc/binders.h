// One binder per host entry: argument names, conversion of TensorArgs to views, dtype dispatch and GIL release.
// bindings.cpp and bindings_cuda.cpp call each binder with a launcher for their backend, so the CPU and CUDA
// entries take identical arguments; the trailing (device, stream) pair is ignored on the CPU.
#pragma once
#include <pybind11/pybind11.h>

#include "assign/lap.h"
#include "chamfer/chamfer.h"
#include "common/dispatch.h"
#include "common/tensor_args.h"
#include "distances/gram_bounds.h"
#include "distances/pairwise_from_gram.h"
#include "neighbors/candidate_state.h"
#include "eval/mlp_head.h"
#include "eval/small_cnn.h"
#include "iou/max_iou.h"
#include "neighbors/nearest_scan.h"

namespace wmf {

namespace py = pybind11;

inline RowNorms as_row_norms(const TensorArg& sqnorm, const TensorArg& norm, const OptionalTensorArg& scale,
                             const char* side) {
  const Vec<double> sq = as_vec<double>(sqnorm, side);
  WMF_CHECK(as_vec<double>(norm, side).size == sq.size, side, ": sqnorm and norm differ in length");
  return {sq.data, as_ptr<double>(norm, side), as_optional_ptr<double>(scale, side)};
}

inline CandidateState as_candidate_state(const TensorArg& bound_heap, const TensorArg& cand_index,
                                         const TensorArg& cand_lower, const TensorArg& cand_count,
                                         const TensorArg& overflow) {
  const Mat<double> heap = as_mat<double>(bound_heap, "bound_heap");
  const Mat<int64_t> index = as_mat<int64_t>(cand_index, "cand_index");
  WMF_CHECK(index.rows == heap.rows, "cand_index and bound_heap disagree on the number of queries");
  return {as_ptr<double>(bound_heap, "bound_heap"), as_ptr<int64_t>(cand_index, "cand_index"),
          as_ptr<double>(cand_lower, "cand_lower"),  as_ptr<int64_t>(cand_count, "cand_count"),
          as_ptr<uint8_t>(overflow, "overflow"),     heap.cols,
          index.cols};
}

template <class Launch>
void def_row_norms(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& x, const TensorArg& sqnorm, const TensorArg& norm, bool require_nonzero,
               const OptionalTensorArg& unusable, int device, std::uintptr_t stream) {
        WMF_DISPATCH_FLOATING(dtype_of(x), T, [&] {
          const ConstMat<T> xv = as_const_mat<T>(x, "x");
          const Vec<double> sv = as_vec<double>(sqnorm, "sqnorm");
          const Vec<double> nv = as_vec<double>(norm, "norm");
          int* counter = as_optional_ptr<int32_t>(unusable, "unusable");
          py::gil_scoped_release release;
          launch(xv, sv, nv, require_nonzero, counter, CudaCtx{device, stream});
        });
      },
      "Float64 squared norm and norm of every row; counts rows the metric cannot use.", py::arg("x"),
      py::arg("sqnorm"), py::arg("norm"), py::arg("require_nonzero"), py::arg("unusable"), py::arg("device"),
      py::arg("stream"));
}

template <class Launch>
void def_pairwise_from_gram(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& gram, const TensorArg& q_rows, const TensorArg& q_sqnorm, const TensorArg& q_norm,
               const OptionalTensorArg& q_scale, const TensorArg& r_rows, const TensorArg& r_sqnorm,
               const TensorArg& r_norm, const OptionalTensorArg& r_scale, double gemm_rel, double operand_rel,
               double rel_tol, int output, const TensorArg& out, int device, std::uintptr_t stream) {
        WMF_DISPATCH_FLOATING(dtype_of(gram), G, [&] { WMF_DISPATCH_FLOATING(dtype_of(q_rows), T, [&] {
          const GramSide<T> q{as_const_mat<T>(q_rows, "q_rows"), as_row_norms(q_sqnorm, q_norm, q_scale, "query")};
          const GramSide<T> r{as_const_mat<T>(r_rows, "r_rows"), as_row_norms(r_sqnorm, r_norm, r_scale, "reference")};
          const ConstMat<G> g = as_const_mat<G>(gram, "gram");
          const Mat<T> o = as_mat<T>(out, "out");
          WMF_CHECK(output >= 0 && output <= 2, "unknown distance output ", output);
          py::gil_scoped_release release;
          launch(g, q, r, GramErrorModel{gemm_rel, operand_rel}, rel_tol, static_cast<DistanceOutput>(output), o,
                 CudaCtx{device, stream});
        }); });
      },
      "Exact distances for one GEMM tile (estimate where provably accurate, else recomputed).", py::arg("gram"),
      py::arg("q_rows"), py::arg("q_sqnorm"), py::arg("q_norm"), py::arg("q_scale"), py::arg("r_rows"),
      py::arg("r_sqnorm"), py::arg("r_norm"), py::arg("r_scale"), py::arg("gemm_rel"), py::arg("operand_rel"), py::arg("rel_tol"), py::arg("output"),
      py::arg("out"), py::arg("device"), py::arg("stream"));
}

template <class Launch>
void def_nearest_scan(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& gram, const TensorArg& q_sqnorm, const TensorArg& q_norm,
               const OptionalTensorArg& q_scale, const TensorArg& r_sqnorm, const TensorArg& r_norm,
               const OptionalTensorArg& r_scale, double gemm_rel, double operand_rel, const TensorArg& q_index,
               int64_t r_offset, bool exclude_self, const TensorArg& bound_heap,
               const TensorArg& cand_index, const TensorArg& cand_lower, const TensorArg& cand_count,
               const TensorArg& overflow, int device, std::uintptr_t stream) {
        WMF_DISPATCH_FLOATING(dtype_of(gram), G, [&] {
          const ConstMat<G> g = as_const_mat<G>(gram, "gram");
          const RowNorms q = as_row_norms(q_sqnorm, q_norm, q_scale, "query");
          const RowNorms r = as_row_norms(r_sqnorm, r_norm, r_scale, "reference");
          const Vec<int64_t> qi = as_vec<int64_t>(q_index, "q_index");
          WMF_CHECK(qi.size == g.rows, "q_index must have one entry per gram row");
          const CandidateState s = as_candidate_state(bound_heap, cand_index, cand_lower, cand_count, overflow);
          WMF_CHECK(as_mat<double>(bound_heap, "bound_heap").rows == g.rows, "state rows must match gram rows");
          py::gil_scoped_release release;
          launch(g, q, r, GramErrorModel{gemm_rel, operand_rel}, qi.data, r_offset, exclude_self, s,
                 CudaCtx{device, stream});
        });
      },
      "Candidate step of nearest(): bound every pair of a GEMM tile and update the per-query state.",
      py::arg("gram"), py::arg("q_sqnorm"), py::arg("q_norm"), py::arg("q_scale"), py::arg("r_sqnorm"),
      py::arg("r_norm"), py::arg("r_scale"), py::arg("gemm_rel"), py::arg("operand_rel"), py::arg("q_index"),
      py::arg("r_offset"),
      py::arg("exclude_self"), py::arg("bound_heap"), py::arg("cand_index"), py::arg("cand_lower"),
      py::arg("cand_count"), py::arg("overflow"), py::arg("device"), py::arg("stream"));
}

template <class Launch>
void def_nearest_rerank(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& query, const OptionalTensorArg& q_norm, const TensorArg& reference,
               const OptionalTensorArg& r_norm, const TensorArg& q_index, bool exclude_self, const TensorArg& bound_heap,
               const TensorArg& cand_index, const TensorArg& cand_lower, const TensorArg& cand_count,
               const TensorArg& overflow, const TensorArg& out_sqdist, const TensorArg& out_index, int output,
               const TensorArg& out_value, const TensorArg& short_rows, int device, std::uintptr_t stream) {
        WMF_DISPATCH_FLOATING(dtype_of(query), T, [&] {
          const ConstMat<T> qv = as_const_mat<T>(query, "query");
          const ConstMat<T> rv = as_const_mat<T>(reference, "reference");
          const CandidateState s = as_candidate_state(bound_heap, cand_index, cand_lower, cand_count, overflow);
          const Mat<double> od = as_mat<double>(out_sqdist, "out_sqdist");
          const Mat<int64_t> oi = as_mat<int64_t>(out_index, "out_index");
          const Mat<T> ov = as_mat<T>(out_value, "out_value");
          WMF_CHECK(od.rows == qv.rows && oi.rows == qv.rows && ov.rows == qv.rows,
                    "outputs must have one row per query");
          WMF_CHECK(ov.cols == s.k && ov.col_stride == 1, "out_value must be row-major with k columns");
          WMF_CHECK(output >= 0 && output <= 2, "unknown distance output ", output);
          int* sr = as_ptr<int32_t>(short_rows, "short_rows");
          const Vec<int64_t> qi = as_vec<int64_t>(q_index, "q_index");
          WMF_CHECK(qi.size == qv.rows, "q_index must have one entry per query row");
          py::gil_scoped_release release;
          launch(qv, as_optional_ptr<double>(q_norm, "q_norm"), rv, as_optional_ptr<double>(r_norm, "r_norm"),
                 qi.data, exclude_self, s, od, oi, static_cast<DistanceOutput>(output), ov, sr,
                 CudaCtx{device, stream});
        });
      },
      "Exact step of nearest(): exact distances of the surviving candidates, sorted top-k.", py::arg("query"),
      py::arg("q_norm"), py::arg("reference"), py::arg("r_norm"), py::arg("q_index"), py::arg("exclude_self"),
      py::arg("bound_heap"), py::arg("cand_index"), py::arg("cand_lower"), py::arg("cand_count"),
      py::arg("overflow"), py::arg("out_sqdist"), py::arg("out_index"), py::arg("output"), py::arg("out_value"),
      py::arg("short_rows"), py::arg("device"), py::arg("stream"));
}

template <class Launch>
void def_pack_masks(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& masks, const TensorArg& words, int device, std::uintptr_t stream) {
        const ConstMat<uint8_t> mv = as_const_mat<uint8_t>(masks, "masks");
        const Mat<int64_t> wv = as_mat<int64_t>(words, "words");
        py::gil_scoped_release release;
        launch(mv, wv, CudaCtx{device, stream});
      },
      "Packs bool masks (as bytes) into int64 words.", py::arg("masks"), py::arg("words"), py::arg("device"),
      py::arg("stream"));
}

template <class Launch>
void def_error_masks(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& predictions, const TensorArg& labels, const TensorArg& words, int device,
               std::uintptr_t stream) {
        const Mat<int64_t> wv = as_mat<int64_t>(words, "words");
        auto run = [&](auto tag) {
          using I = decltype(tag);
          const ConstMat<I> pv = as_const_mat<I>(predictions, "predictions");
          const Vec<I> lv = as_vec<I>(labels, "labels");
          WMF_CHECK(lv.size == pv.cols, "labels must have one entry per sample");
          py::gil_scoped_release release;
          launch(pv, static_cast<const I*>(lv.data), wv, CudaCtx{device, stream});
        };
        if (dtype_of(predictions) == "int32") {
          run(int32_t{});
        } else {
          run(int64_t{});
        }
      },
      "Packs predictions != labels into int64 words.", py::arg("predictions"), py::arg("labels"), py::arg("words"),
      py::arg("device"), py::arg("stream"));
}

template <class Launch>
void def_mask_counts(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& words, const TensorArg& counts, int device, std::uintptr_t stream) {
        const ConstMat<int64_t> wv = as_const_mat<int64_t>(words, "words");
        const Vec<int64_t> cv = as_vec<int64_t>(counts, "counts");
        py::gil_scoped_release release;
        launch(wv, cv, CudaCtx{device, stream});
      },
      "Set bits per packed row.", py::arg("words"), py::arg("counts"), py::arg("device"), py::arg("stream"));
}

template <class Launch>
void def_iou_matrix(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& a, const TensorArg& count_a, const TensorArg& b, const TensorArg& count_b,
               const TensorArg& out, int device, std::uintptr_t stream) {
        const ConstMat<int64_t> av = as_const_mat<int64_t>(a, "a");
        const ConstMat<int64_t> bv = as_const_mat<int64_t>(b, "b");
        const int64_t* ca = as_ptr<int64_t>(count_a, "count_a");
        const int64_t* cb = as_ptr<int64_t>(count_b, "count_b");
        const Mat<float> ov = as_mat<float>(out, "out");
        py::gil_scoped_release release;
        launch(av, ca, bv, cb, ov, CudaCtx{device, stream});
      },
      "IoU of every pair of packed rows.", py::arg("a"), py::arg("count_a"), py::arg("b"), py::arg("count_b"),
      py::arg("out"), py::arg("device"), py::arg("stream"));
}

template <class Launch>
void def_max_iou(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& query, const TensorArg& count_q, const TensorArg& reference,
               const TensorArg& count_r, bool exclude_self, const TensorArg& top_inter, const TensorArg& top_union,
               const TensorArg& out_values, const TensorArg& out_index, int device, std::uintptr_t stream) {
        const ConstMat<int64_t> qv = as_const_mat<int64_t>(query, "query");
        const ConstMat<int64_t> rv = as_const_mat<int64_t>(reference, "reference");
        const IouTopK top{as_mat<int64_t>(top_inter, "top_inter"), as_mat<int64_t>(top_union, "top_union"),
                          as_mat<float>(out_values, "out_values"), as_mat<int64_t>(out_index, "out_index")};
        WMF_CHECK(top.out_index.rows == qv.rows && top.out_values.rows == qv.rows && top.top_inter.rows == qv.rows &&
                      top.top_union.rows == qv.rows,
                  "top-k buffers need one row per query");
        const int64_t* cq = as_ptr<int64_t>(count_q, "count_q");
        const int64_t* cr = as_ptr<int64_t>(count_r, "count_r");
        py::gil_scoped_release release;
        launch(qv, cq, rv, cr, exclude_self, top, CudaCtx{device, stream});
      },
      "Top-k IoU of every packed query row against the reference rows.", py::arg("query"), py::arg("count_q"),
      py::arg("reference"), py::arg("count_r"), py::arg("exclude_self"), py::arg("top_inter"),
      py::arg("top_union"), py::arg("out_values"), py::arg("out_index"), py::arg("device"), py::arg("stream"));
}

// A contiguous batch of point clouds [count, points, 3].
template <class T>
CloudBatch<T> as_cloud_batch(const TensorArg& t, const char* name) {
  const auto& shape = std::get<1>(t);
  WMF_CHECK(shape.size() == 3 && shape[2] == 3, name, " must be [count, points, 3]");
  return {as_vec<T>(t, name).data, shape[0], shape[1]};
}

template <class Launch>
void def_chamfer_matrix(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& a, const TensorArg& b, bool squared, bool symmetric, const TensorArg& out, int device,
               std::uintptr_t stream) {
        WMF_CHECK(dtype_of(a) == dtype_of(b) && dtype_of(out) == dtype_of(a), "a, b and out must share one dtype");
        WMF_DISPATCH_FLOATING(dtype_of(a), T, [&] {
          const CloudBatch<T> av = as_cloud_batch<T>(a, "a");
          const CloudBatch<T> bv = as_cloud_batch<T>(b, "b");
          const Mat<T> ov = as_mat<T>(out, "out");
          py::gil_scoped_release release;
          launch(av, bv, squared, symmetric, ov, CudaCtx{device, stream});
        });
      },
      "Chamfer distance of every pair of point clouds (exact: direct differences).", py::arg("a"), py::arg("b"),
      py::arg("squared"), py::arg("symmetric"), py::arg("out"), py::arg("device"), py::arg("stream"));
}

template <class Launch>
void def_mlp_head(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& hidden, const TensorArg& w2, const TensorArg& b2, const TensorArg& labels,
               int activation, const TensorArg& unit_error_scale, const TensorArg& unit_error_offset,
               const TensorArg& input_norms, double dot_error, const TensorArg& predictions, const TensorArg& nll,
               const TensorArg& uncertain, int device, std::uintptr_t stream) {
        const std::vector<int64_t>& w2_shape = std::get<1>(w2);
        WMF_CHECK(w2_shape.size() == 3, "w2 must be [B, C, H]");
        WMF_CHECK(activation >= 0 && activation <= 4, "unknown activation ", activation);
        const MlpHead head{as_const_mat<float>(hidden, "hidden"), as_vec<float>(w2, "w2").data,
                           as_ptr<float>(b2, "b2"), as_ptr<int64_t>(labels, "labels"), w2_shape[0], w2_shape[2],
                           w2_shape[1], static_cast<Activation>(activation)};
        const HeadCertificate cert{as_ptr<float>(unit_error_scale, "unit_error_scale"),
                                   as_ptr<float>(unit_error_offset, "unit_error_offset"),
                                   as_ptr<float>(input_norms, "input_norms"), static_cast<float>(dot_error)};
        const HeadOutputs out{as_mat<int64_t>(predictions, "predictions"), as_mat<float>(nll, "nll"),
                              as_mat<uint8_t>(uncertain, "uncertain")};
        py::gil_scoped_release release;
        launch(head, cert, out, CudaCtx{device, stream});
      },
      "Activation, second Linear, argmax, cross-entropy and argmax certificate of two-layer MLPs after their "
      "first GEMM.",
      py::arg("hidden"), py::arg("w2"), py::arg("b2"), py::arg("labels"), py::arg("activation"),
      py::arg("unit_error_scale"), py::arg("unit_error_offset"), py::arg("input_norms"), py::arg("dot_error"),
      py::arg("predictions"), py::arg("nll"), py::arg("uncertain"), py::arg("device"), py::arg("stream"));
}

// layers: int64 [count, 12] rows (op, act, in_c, in_h, in_w, out_c, out_h, out_w, kernel, pad, weight_offset,
// bias_offset), as weightmem_fast/ops/eval.py builds them.
template <class Launch>
void def_small_cnn_logits(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& layers, int64_t max_map, const TensorArg& weights, const TensorArg& inputs,
               const TensorArg& logits, int device, std::uintptr_t stream) {
        const ConstMat<int64_t> table = as_const_mat<int64_t>(layers, "layers");
        WMF_CHECK(table.cols == 12 && table.rows >= 1 && table.col_stride == 1, "layers must be [count >= 1, 12]");
        std::vector<CnnLayer> net(static_cast<size_t>(table.rows));
        for (int64_t i = 0; i < table.rows; ++i) {
          const int64_t* r = table.row(i);
          WMF_CHECK(r[0] >= 0 && r[0] <= 3, "unknown layer kind ", r[0]);
          net[i] = CnnLayer{static_cast<CnnOp>(r[0]),      static_cast<int32_t>(r[1]), static_cast<int32_t>(r[2]),
                            static_cast<int32_t>(r[3]),    static_cast<int32_t>(r[4]), static_cast<int32_t>(r[5]),
                            static_cast<int32_t>(r[6]),    static_cast<int32_t>(r[7]), static_cast<int32_t>(r[8]),
                            static_cast<int32_t>(r[9]),    r[10],                      r[11]};
        }
        const ConstMat<float> wv = as_const_mat<float>(weights, "weights");
        const ConstMat<float> iv = as_const_mat<float>(inputs, "inputs");
        const Mat<float> lv = as_mat<float>(logits, "logits");
        py::gil_scoped_release release;
        launch(SmallCnn{net.data(), static_cast<int32_t>(net.size()), max_map}, wv, iv, lv, CudaCtx{device, stream});
      },
      "Logits of B small CNNs (conv, max-pool, ReLU-like, linear layers) on shared inputs, fused per sample tile.",
      py::arg("layers"), py::arg("max_map"), py::arg("weights"), py::arg("inputs"), py::arg("logits"),
      py::arg("device"), py::arg("stream"));
}

// costs [count, n, n] contiguous; scratch: optional uint8 bytes (CUDA with n > kLapLocalMaxN).
template <class Launch>
void def_linear_assignment(py::module_& m, const char* name, Launch launch) {
  m.def(
      name,
      [launch](const TensorArg& costs, const TensorArg& perm, const TensorArg& total,
               const OptionalTensorArg& scratch, int device, std::uintptr_t stream) {
        const std::vector<int64_t>& shape = std::get<1>(costs);
        WMF_CHECK(shape.size() == 3 && shape[1] == shape[2], "costs must be [B, n, n]");
        const Mat<int64_t> pv = as_mat<int64_t>(perm, "perm");
        const Vec<double> tv = as_vec<double>(total, "total");
        unsigned char* sp = as_optional_ptr<uint8_t>(scratch, "scratch");
        const int64_t scratch_bytes = scratch ? as_vec<uint8_t>(*scratch, "scratch").size : 0;
        WMF_DISPATCH_FLOATING(dtype_of(costs), T, [&] {
          const CostBatch<T> cv{as_vec<T>(costs, "costs").data, shape[0], shape[1]};
          py::gil_scoped_release release;
          launch(cv, pv, tv, sp, scratch_bytes, CudaCtx{device, stream});
        });
      },
      "Batched square linear assignment (minimum total cost): perm [B, n] row -> column and float64 totals [B].",
      py::arg("costs"), py::arg("perm"), py::arg("total"), py::arg("scratch"), py::arg("device"), py::arg("stream"));
}

}  // namespace wmf
