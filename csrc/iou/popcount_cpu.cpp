// Popcounts with run-time dispatch: AVX-512 VPOPCNTDQ (8 words per vpopcntq) where the CPU has it, else the
// scalar popcnt instruction, else the portable builtin (the x86-64 baseline has no popcnt, so the builtin would
// be a dozen instructions per word). GCC's target_clones cannot name VPOPCNTDQ, hence the explicit choice.
#include "iou/popcount_cpu.h"

namespace wmf {

namespace {

// The plain reductions, inlined into each target's function so the compiler vectorises them for that target.
// With kAnd false, b is not read.
template <bool kAnd>
__attribute__((always_inline)) inline int64_t popcount_body(const int64_t* a, const int64_t* b, int64_t words) {
  int64_t total = 0;
  for (int64_t w = 0; w < words; ++w) {
    const uint64_t x = kAnd ? static_cast<uint64_t>(a[w]) & static_cast<uint64_t>(b[w]) : static_cast<uint64_t>(a[w]);
    total += __builtin_popcountll(x);
  }
  return total;
}

template <bool kAnd>
int64_t popcount_portable(const int64_t* a, const int64_t* b, int64_t words) {
  return popcount_body<kAnd>(a, b, words);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
template <bool kAnd>
__attribute__((target("popcnt"))) int64_t popcount_popcnt(const int64_t* a, const int64_t* b, int64_t words) {
  return popcount_body<kAnd>(a, b, words);
}

template <bool kAnd>
__attribute__((target("avx512f,avx512vpopcntdq"))) int64_t popcount_avx512(const int64_t* a, const int64_t* b,
                                                                           int64_t words) {
  return popcount_body<kAnd>(a, b, words);
}

using PopcountFn = int64_t (*)(const int64_t*, const int64_t*, int64_t);

template <bool kAnd>
PopcountFn choose() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512vpopcntdq")) return popcount_avx512<kAnd>;
  if (__builtin_cpu_supports("popcnt")) return popcount_popcnt<kAnd>;
  return popcount_portable<kAnd>;
}

const PopcountFn kAndPopcount = choose<true>();
const PopcountFn kPopcount = choose<false>();
#else
constexpr auto kAndPopcount = popcount_portable<true>;
constexpr auto kPopcount = popcount_portable<false>;
#endif

}  // namespace

int64_t and_popcount(const int64_t* a, const int64_t* b, int64_t words) { return kAndPopcount(a, b, words); }

int64_t popcount(const int64_t* a, int64_t words) { return kPopcount(a, nullptr, words); }

}  // namespace wmf
