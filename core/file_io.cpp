#include "core/file_io.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace linpar {

namespace fs = std::filesystem;

void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& write) {
  const std::string temp = path + ".tmp";
  bool written = false;
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (out) {
      write(out);
      out.flush();
      written = static_cast<bool>(out);
    }
  }
  std::error_code ec;
  if (!written) {
    fs::remove(temp, ec);
    user_error("cannot write {}", path);
  }
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    user_error("cannot rename {} to {}: {}", temp, path, ec.message());
  }
}

std::string read_whole_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("{} {}: cannot open it", what, path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace linpar
