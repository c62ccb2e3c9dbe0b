// WMF_HD marks functions shared verbatim by the CPU and CUDA kernels (the same arithmetic on both backends).
#pragma once
#if defined(__CUDACC__)
#define WMF_HD __host__ __device__ __forceinline__
#else
#define WMF_HD inline
#endif
