#include "cli/app.h"

#include <fmt/format.h>
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>
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
      {"train", {train_command, "train a model (CPU or GPU), or --dry-run to check a configuration"}},
      {"inspect", {inspect_command, "list what a checkpoint holds"}},
      {"convert", {convert_command, "import/export released TransNormerLLM safetensors weights"}},
      {"prepare-data", {prepare_data_command, "tokenize a text file into train/val token files"}},
      {"presets", {presets_command, "list the model presets with their parameter counts"}},
      {"sim", {sim_command, "predict one training step of a layout on a cluster (simulation, no GPU)"}},
      {"search", {search_command, "rank every layout of a model on a cluster by simulated throughput (no GPU)"}},
      {"profile", {profile_command, "measure GEMM, attention, memory and collective rates for the simulator"}},
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

namespace {
// MPI for the process's lifetime: linpar started without mpirun is a world of one.
class MpiSession {
 public:
  // MPI_THREAD_MULTIPLE: CO2's outer all-reduce progresses on its own thread
  // while the training thread runs TP/PP/SP communication.
  MpiSession(int* argc, char*** argv) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  }
  ~MpiSession() { MPI_Finalize(); }
  int rank() const {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
  }
  int size() const {
    int n = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
  }
};

// One line, printed by the rank that failed; a multi-process run is aborted
// as a whole so no rank waits forever on a peer that stopped. An error every
// rank meets (an option, a layout) is printed once, by rank 0: the other
// ranks wait half a second before printing theirs, and rank 0's abort ends
// them first. An error of one rank alone (say its options differ) is still
// printed, by that rank, after the wait: "rank 3: linpar: error: ...".
int fail(const MpiSession& mpi, int status, const std::string& line) {
  if (mpi.size() > 1 && mpi.rank() != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    fmt::print(stderr, "rank {}: {}\n", mpi.rank(), line);
  } else {
    fmt::print(stderr, "{}\n", line);
  }
  std::fflush(stderr);
  if (mpi.size() > 1) MPI_Abort(MPI_COMM_WORLD, status);
  return status;
}
}  // namespace

int run_main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_usage();
    return args.empty() ? 2 : 0;
  }
  try {
    auto it = commands().find(args[0]);
    if (it == commands().end()) {
      user_error(
          "unknown command '{}': expected one of train, inspect, convert, prepare-data, presets, profile, sim, search",
          args[0]);
    }
    return it->second.run(std::vector<std::string>(args.begin() + 1, args.end()));
  } catch (const UserError& e) {
    return fail(mpi, 2, fmt::format("linpar: error: {}", e.what()));
  } catch (const std::exception& e) {
    return fail(mpi, 1, fmt::format("linpar: internal error: {}", e.what()));
  }
}

}  // namespace linpar::cli
