// Non-owning views of tensors that Python allocated and validated (STYLE §2). No CUDA types appear here,
// so op headers that use them compile with the plain C++ compiler.
#pragma once
#include <cstdint>

#include "common/hostdevice.h"

namespace wmf {

// A 2-D view: element (i, j) is data[i * row_stride + j * col_stride], strides in elements.
template <class T>
struct ConstMat {
  const T* data;
  int64_t rows;
  int64_t cols;
  int64_t row_stride;
  int64_t col_stride;
  WMF_HD const T& operator()(int64_t i, int64_t j) const { return data[i * row_stride + j * col_stride]; }
  // Only valid when col_stride == 1 (checked at entry points that read whole rows).
  WMF_HD const T* row(int64_t i) const { return data + i * row_stride; }
};

template <class T>
struct Mat {
  T* data;
  int64_t rows;
  int64_t cols;
  int64_t row_stride;
  int64_t col_stride;
  WMF_HD T& operator()(int64_t i, int64_t j) const { return data[i * row_stride + j * col_stride]; }
};

// A contiguous 1-D view.
template <class T>
struct Vec {
  T* data;
  int64_t size;
  WMF_HD T& operator[](int64_t i) const { return data[i]; }
};

// Device and stream without CUDA headers; the stream is a cudaStream_t stored as an integer.
struct CudaCtx {
  int device;
  std::uintptr_t stream;
};

}  // namespace wmf
