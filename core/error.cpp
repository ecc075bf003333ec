#include "core/error.h"

#include <H5Epublic.h>
#include <mpi.h>

namespace linpar {

void internal_error(const char* file, int line, const std::string& what) {
  throw InternalError(fmt::format("{}:{}: {}", file, line, what));
}

std::string mpi_error_string(int status) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(status, text, &length) != MPI_SUCCESS) {
    return fmt::format("MPI error {}", status);
  }
  return std::string(text, static_cast<size_t>(length));
}

// Walks HDF5's error stack and keeps the innermost description, which is the
// one that names the cause (e.g. "unable to open file").
std::string hdf5_error_string() {
  std::string message;
  auto walk = [](unsigned, const H5E_error2_t* error, void* data) -> herr_t {
    auto* out = static_cast<std::string*>(data);
    if (error->desc != nullptr && error->desc[0] != '\0') {
      *out = error->desc;
    }
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk, &message);
  H5Eclear2(H5E_DEFAULT);
  return message.empty() ? std::string("HDF5 call failed") : message;
}

}  // namespace linpar
