// Whole-file helpers shared by every writer of linpar's own formats (token
// files, safetensors, JSON metadata): no reader ever sees half a file under the
// final name.
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace linpar {

// Runs `write` on a stream to path + ".tmp", then renames it to `path`. On any
// failure the temporary file is removed and a UserError names `path`.
void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& write);

// The whole file as bytes; UserError naming `what` and the path when unreadable.
std::string read_whole_file(const std::string& path, const std::string& what);

}  // namespace linpar
