// Tensors cross the Python boundary as (data_ptr, shape, strides, dtype name) tuples, for CPU and CUDA alike
// (weightmem_fast/_ext.py builds them). The extension never links libtorch (STYLE §3); the dtype name replaces
// the type check that a typed array caster would give, and nothing is ever converted or copied here.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/check.h"
#include "common/views.h"

namespace wmf {

using TensorArg = std::tuple<std::uintptr_t, std::vector<int64_t>, std::vector<int64_t>, std::string>;
using OptionalTensorArg = std::optional<TensorArg>;

template <class T>
constexpr const char* dtype_name();
template <>
constexpr const char* dtype_name<float>() { return "float32"; }
template <>
constexpr const char* dtype_name<double>() { return "float64"; }
template <>
constexpr const char* dtype_name<int64_t>() { return "int64"; }
template <>
constexpr const char* dtype_name<int32_t>() { return "int32"; }
template <>
constexpr const char* dtype_name<uint8_t>() { return "uint8"; }

inline const std::string& dtype_of(const TensorArg& t) { return std::get<3>(t); }

template <class T>
T* data_of(const TensorArg& t, const char* name, size_t ndim) {
  WMF_CHECK(std::get<3>(t) == dtype_name<T>(), name, " must be ", dtype_name<T>(), ", got ", std::get<3>(t));
  WMF_CHECK(std::get<1>(t).size() == ndim && std::get<2>(t).size() == ndim, name, " must have ", ndim,
            " dimensions");
  return reinterpret_cast<T*>(std::get<0>(t));
}

template <class T>
Mat<T> as_mat(const TensorArg& t, const char* name) {
  T* data = data_of<T>(t, name, 2);
  const auto& shape = std::get<1>(t);
  const auto& strides = std::get<2>(t);
  return {data, shape[0], shape[1], strides[0], strides[1]};
}

template <class T>
ConstMat<T> as_const_mat(const TensorArg& t, const char* name) {
  const Mat<T> m = as_mat<T>(t, name);
  return {m.data, m.rows, m.cols, m.row_stride, m.col_stride};
}

// A contiguous vector (or a contiguous tensor of any rank, viewed flat).
template <class T>
Vec<T> as_vec(const TensorArg& t, const char* name) {
  const auto& shape = std::get<1>(t);
  const auto& strides = std::get<2>(t);
  T* data = data_of<T>(t, name, shape.size());
  int64_t size = 1, expected_stride = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    WMF_CHECK(shape[d] == 1 || strides[d] == expected_stride, name, " must be contiguous");
    expected_stride *= shape[d];
    size *= shape[d];
  }
  return {data, size};
}

template <class T>
T* as_ptr(const TensorArg& t, const char* name) {
  return as_vec<T>(t, name).data;
}

template <class T>
T* as_optional_ptr(const OptionalTensorArg& t, const char* name) {
  return t ? as_ptr<T>(*t, name) : nullptr;
}

}  // namespace wmf
