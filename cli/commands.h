// One function per subcommand (one file each); args exclude the subcommand.
#pragma once

#include <string>
#include <vector>

namespace linpar::cli {

int train_command(const std::vector<std::string>& args);
int inspect_command(const std::vector<std::string>& args);
int convert_command(const std::vector<std::string>& args);
int prepare_data_command(const std::vector<std::string>& args);
int presets_command(const std::vector<std::string>& args);
int profile_command(const std::vector<std::string>& args);
int sim_command(const std::vector<std::string>& args);
int search_command(const std::vector<std::string>& args);

}  // namespace linpar::cli
