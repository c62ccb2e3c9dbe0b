// Maps the dtype name Python passes with a raw pointer to the template instantiation (float; double for exact
// float64 work). Instantiations live in the .cpp/.cu files.
#pragma once
#include <string>

#include "common/check.h"

#define WMF_DISPATCH_FLOATING(dtype_name, T, ...)                                   \
  [&] {                                                                            \
    if ((dtype_name) == "float32") {                                               \
      using T = float;                                                             \
      return __VA_ARGS__();                                                        \
    }                                                                              \
    WMF_CHECK((dtype_name) == "float64", "unsupported dtype ", (dtype_name),        \
              " (expected float32 or float64)");                                   \
    using T = double;                                                              \
    return __VA_ARGS__();                                                          \
  }()
