// Logging: plain lines through fmt, prefixed with the level. Only rank 0 of a
// multi-process run should log progress; callers decide (no hidden globals).
#pragma once

#include <fmt/format.h>

#include <cstdio>

namespace linpar::log {

template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print(stdout, "{}\n", fmt::format(format, std::forward<Args>(args)...));
  std::fflush(stdout);
}

template <typename... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print(stderr, "warning: {}\n", fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace linpar::log
