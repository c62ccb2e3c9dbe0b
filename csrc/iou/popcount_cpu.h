// CPU popcounts over W words, compiled per instruction set and chosen at load time (popcount_cpu.cpp).
#pragma once
#include <cstdint>

namespace wmf {

// popcount(a & b) summed over the words.
int64_t and_popcount(const int64_t* a, const int64_t* b, int64_t words);

// popcount(a) summed over the words.
int64_t popcount(const int64_t* a, int64_t words);

}  // namespace wmf
