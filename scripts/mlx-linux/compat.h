/* Force-included into mlx-c's compile and bindgen's parse on Linux x86_64 (see
 * scripts/install-mlx-linux.sh). It bridges two gaps between mlx-c 0.7 and Debian 12's
 * toolchain without editing mlx-c or mlx-rs. */
#ifndef MINIBAR_MLX_COMPAT_H
#define MINIBAR_MLX_COMPAT_H

/* 1. mlx-rs calls the float16/bfloat16 entry points unconditionally, but mlx-c's half.h
 * declares them only on ARM. The C functions pass these by pointer only, so 16-bit storage
 * types with the same layout are enough. bindgen (C, clang) maps __fp16 to the
 * __BindgenFloat16 wrapper that mlx-rs expects. */
#if !defined(__aarch64__)
#include <stdint.h>
#define HAS_FLOAT16
#define HAS_BFLOAT16
#ifdef __cplusplus
typedef uint16_t float16_t;
#else
typedef __fp16 float16_t;
#endif
typedef uint16_t bfloat16_t;
#endif

/* 2. mlx-c's private/io.h uses std::format, which libstdc++ 12 lacks. Its messages only use
 * "{}" placeholders, so a tiny substitute defined only when the library has none suffices. */
#ifdef __cplusplus
#include <version>
#if !defined(__cpp_lib_format)
#include <sstream>
#include <string>
#include <string_view>
namespace std {
namespace minibar_compat {
inline void format_into(std::ostringstream& out, std::string_view fmt) { out << fmt; }
template <typename T, typename... Rest>
void format_into(std::ostringstream& out, std::string_view fmt, const T& first,
                 const Rest&... rest) {
  auto at = fmt.find("{}");
  if (at == std::string_view::npos) {
    out << fmt;
    return;
  }
  out << fmt.substr(0, at) << first;
  format_into(out, fmt.substr(at + 2), rest...);
}
}  // namespace minibar_compat
template <typename... Args>
std::string format(std::string_view fmt, const Args&... args) {
  std::ostringstream out;
  minibar_compat::format_into(out, fmt, args...);
  return out.str();
}
}  // namespace std
#endif
#endif

#endif
