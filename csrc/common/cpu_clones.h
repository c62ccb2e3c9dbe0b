// WMF_CPU_CLONES compiles a hot CPU function for AVX-512, AVX2 and the baseline and picks one at load time
// (GCC/Clang function multiversioning), so the wheel stays portable while the loop still gets wide vectors.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__APPLE__)
#define WMF_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WMF_CPU_CLONES
#endif

