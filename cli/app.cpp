#include "cli/app.h"

#include <fmt/format.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"

namespace linpar::cli {

namespace {

struct Command {
  std::function<int(const std::vector<std::string>&)> run;
  std::string summary;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"train", {train_command, "train a model (CPU), or --dry-run to check a configuration"}},
      {"inspect", {inspect_command, "list what a checkpoint holds"}},
      {"convert", {convert_command, "import/export released TransNormerLLM safetensors weights"}},
      {"prepare-data", {prepare_data_command, "tokenize a text file into train/val token files"}},
      {"presets", {presets_command, "list the model presets with their parameter counts"}},
  };
  return table;
}

void print_usage() {
  fmt::print(
      "usage: linpar <command> [options]   (linpar <command> --help for its "
      "options)\n\ncommands:\n");
  for (const auto& [name, command] : commands()) fmt::print("  {:<14} {}\n", name, command.summary);
}

}  // namespace

int run_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_usage();
    return args.empty() ? 2 : 0;
  }
  try {
    auto it = commands().find(args[0]);
    if (it == commands().end()) {
      user_error(
          "unknown command '{}': expected one of train, inspect, convert, prepare-data, presets",
          args[0]);
    }
    return it->second.run(std::vector<std::string>(args.begin() + 1, args.end()));
  } catch (const UserError& e) {
    fmt::print(stderr, "linpar: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "linpar: internal error: {}\n", e.what());
    return 1;
  }
}

}  // namespace linpar::cli
