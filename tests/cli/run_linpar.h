// Runs the real linpar binary as a user would and captures what it printed.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "temp_dir.h"

namespace linpar::testing {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `args` is appended to the binary's path as shell words (tests quote nothing
// that needs quoting).
inline RunResult run_linpar(const std::string& args) {
  TempDir scratch;
  const std::string out = scratch / "out", err = scratch / "err";
  const std::string command =
      std::string(LINPAR_BINARY) + " " + args + " >" + out + " 2>" + err + " </dev/null";
  const int status = std::system(command.c_str());
  RunResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = read_file(out);
  result.err = read_file(err);
  return result;
}

// mpirun as ctest runs the MPI tests: oversubscribed, and allowed to run as
// root where the tests do. The test binary is an MPI singleton itself
// (test_main.cpp), whose OMPI_/PMIX_ variables would make the mpirun it
// starts take itself for part of that job: the shell drops them first.
inline std::string mpirun() {
  return std::string("unset $(env | sed -n 's/^\\(OMPI_[^=]*\\|PMIX_[^=]*\\)=.*/\\1/p'); ") +
         LINPAR_MPIEXEC + " --oversubscribe" + (geteuid() == 0 ? " --allow-run-as-root" : "");
}

// The default corpus prepared by scripts/prepare_corpus.sh (test.sh runs it).
inline std::string default_corpus_dir() { return std::string(LINPAR_SOURCE_DIR) + "/data/kjv"; }

}  // namespace linpar::testing
