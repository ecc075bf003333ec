// The linpar command line: subcommand dispatch and the error contract (one line
// on stderr, exit status 2, for anything the user got wrong).
#pragma once

namespace linpar::cli {

int run_main(int argc, char** argv);

}  // namespace linpar::cli
