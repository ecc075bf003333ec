#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace linpar {

ProgressBar::Mode ProgressBar::mode_for_stdout() {
  return isatty(STDOUT_FILENO) ? Mode::Bar : Mode::Lines;
}

ProgressBar::ProgressBar(int64_t first, int64_t total, Mode mode, int64_t line_every)
    : first_(first), total_(total), mode_(mode), line_every_(line_every < 1 ? 1 : line_every) {}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string ProgressBar::eta(int64_t done) const {
  const int64_t finished = done - first_;
  if (finished <= 0) return "?";
  return format_duration(timer_.elapsed_s() / static_cast<double>(finished) *
                         static_cast<double>(total_ - done));
}

void ProgressBar::update(int64_t done, const std::string& status) {
  if (mode_ == Mode::Quiet) return;
  if (mode_ == Mode::Bar) {
    constexpr int kWidth = 30;
    const double fraction =
        total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    const int filled = static_cast<int>(fraction * kWidth);
    fmt::print(
        stdout, "\r[{}{}] {}/{} {} ETA {}\033[K", std::string(static_cast<size_t>(filled), '#'),
        std::string(static_cast<size_t>(kWidth - filled), '.'), done, total_, status, eta(done));
    bar_drawn_ = true;
  } else if (done % line_every_ == 0 || done == total_ || done == first_ + 1) {
    fmt::print(stdout, "step {}/{} {} ETA {}\n", done, total_, status, eta(done));
  }
  std::fflush(stdout);
}

void ProgressBar::message(const std::string& text) {
  if (mode_ == Mode::Quiet) return;
  if (bar_drawn_) fmt::print(stdout, "\r\033[K");
  fmt::print(stdout, "{}\n", text);
  bar_drawn_ = false;
  std::fflush(stdout);
}

void ProgressBar::finish() {
  if (mode_ == Mode::Bar && bar_drawn_) fmt::print(stdout, "\n");
  bar_drawn_ = false;
  std::fflush(stdout);
}

}  // namespace linpar
