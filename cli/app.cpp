#include "cli/app.h"

#include <fmt/format.h>

namespace linpar::cli {

int run_main(int argc, char** argv) {
  fmt::print("linpar\n");
  return 0;
}

}  // namespace linpar::cli
