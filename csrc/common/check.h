// WMF_CHECK(cond, msg...) throws std::invalid_argument with file:line (pybind11 turns it into ValueError).
// Entry points re-check cheap invariants; library code never aborts on user data.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace wmf::detail {

template <class... Parts>
[[noreturn]] void check_failed(const char* file, int line, const char* cond, const Parts&... parts) {
  std::ostringstream out;
  out << file << ":" << line << ": check failed (" << cond << ")";
  if constexpr (sizeof...(parts) > 0) {
    out << ": ";
    (out << ... << parts);
  }
  throw std::invalid_argument(out.str());
}

}  // namespace wmf::detail

#define WMF_CHECK(cond, ...)                                                     \
  do {                                                                           \
    if (!(cond)) ::wmf::detail::check_failed(__FILE__, __LINE__, #cond, ##__VA_ARGS__); \
  } while (0)
