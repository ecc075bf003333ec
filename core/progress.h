// Progress reporting for long loops: a redrawn bar on a terminal, plain lines
// (every `line_every` updates) when the output is a file or a pipe.
#pragma once

#include <cstdint>
#include <string>

#include "core/timer.h"

namespace linpar {

class ProgressBar {
 public:
  enum class Mode { Bar, Lines, Quiet };
  static Mode mode_for_stdout();  // Bar on a terminal, Lines otherwise

  ProgressBar(int64_t first, int64_t total, Mode mode, int64_t line_every = 10);
  // `done` counts finished units (first < done <= total); `status` is shown after them.
  void update(int64_t done, const std::string& status);
  // Prints a line that stays (e.g. an evaluation result) without breaking the bar.
  void message(const std::string& text);
  void finish();

 private:
  std::string eta(int64_t done) const;
  int64_t first_, total_;
  Mode mode_;
  int64_t line_every_;
  bool bar_drawn_ = false;
  Timer timer_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "42s"

}  // namespace linpar
