#include "cli/app.h"

int main(int argc, char** argv) { return linpar::cli::run_main(argc, argv); }
