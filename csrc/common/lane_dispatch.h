// Run-time choice of the CPU lane vector (common/lanes.h): Kernel<L>::run(args...) compiled three times, for
// AVX-512 (f32x16), AVX2 + FMA (f32x8) and the baseline (f32x4; a vector wider than the registers compiles to
// poor code), and picked once for this CPU. flatten inlines the kernel body into each target's function so it is
// compiled for that target.
#pragma once

#include "common/lanes.h"

namespace wmf {

template <template <class> class Kernel, class... Args>
struct LaneDispatch {
  using Fn = void (*)(Args...);

  __attribute__((flatten)) static void portable(Args... args) { Kernel<f32x4>::run(args...); }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __attribute__((target("avx2,fma"), flatten)) static void avx2(Args... args) { Kernel<f32x8>::run(args...); }
  __attribute__((target("avx512f"), flatten)) static void avx512(Args... args) { Kernel<f32x16>::run(args...); }

  static Fn pick() {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return avx2;
    return portable;
  }
#else
  static Fn pick() { return portable; }
#endif

  // The chosen function, decided on first use.
  static Fn get() {
    static const Fn chosen = pick();
    return chosen;
  }
};

}  // namespace wmf
