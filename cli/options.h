// Shared command-line plumbing: Boost.Program_options parsing with INI config
// files (--config; the command line wins), --help, and the model options every
// subcommand that builds a model shares.
#pragma once

#include <boost/program_options.hpp>
#include <string>
#include <vector>

#include "model/config.h"

namespace linpar::cli {

namespace po = boost::program_options;

// Parses args (without the subcommand) against `options`; adds --help and
// --config. Returns false when --help was printed. Unknown options, bad values
// and unreadable config files throw UserError naming the option.
bool parse_options(const std::string& command, const std::string& usage,
                   const std::vector<std::string>& args, po::options_description& options,
                   po::variables_map& values,
                   const po::positional_options_description* positional = nullptr);

// --model PRESET and per-field overrides (--layers, --width, ...).
void add_model_options(po::options_description& options);
ModelConfig model_config_from(const po::variables_map& values);

}  // namespace linpar::cli
