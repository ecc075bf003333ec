// Errors: one exception type for what a user got wrong (printed as one line by
// main, exit status 2), and check macros for library calls that report file,
// line, the call and the library's own message.
#pragma once

#include <fmt/format.h>

#include <string>

#include "core/error_types.h"

namespace linpar {

template <typename... Args>
[[noreturn]] void user_error(fmt::format_string<Args...> format, Args&&... args) {
  throw UserError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace linpar

// LINPAR_CHECK(cond, "fmt", args...): internal invariant; throws InternalError
// naming file and line.
#define LINPAR_CHECK(cond, ...)                                                   \
  do {                                                                            \
    if (!(cond)) {                                                                \
      ::linpar::internal_error(                                                   \
          __FILE__, __LINE__,                                                     \
          std::string("check failed: " #cond ": ") + ::fmt::format(__VA_ARGS__)); \
    }                                                                             \
  } while (0)

// MPI_CHECK(MPI_Xxx(...)): every MPI call, with MPI's error string.
#define MPI_CHECK(call)                                                              \
  do {                                                                               \
    int linpar_mpi_status_ = (call);                                                 \
    if (linpar_mpi_status_ != 0) {                                                   \
      ::linpar::internal_error(                                                      \
          __FILE__, __LINE__,                                                        \
          std::string(#call ": ") + ::linpar::mpi_error_string(linpar_mpi_status_)); \
    }                                                                                \
  } while (0)

// H5_CHECK(H5Xxx(...)): HDF5 returns a negative value on failure.
#define H5_CHECK(call)                                                                   \
  ([&]() {                                                                               \
    auto linpar_h5_result_ = (call);                                                     \
    if (linpar_h5_result_ < 0) {                                                         \
      ::linpar::internal_error(__FILE__, __LINE__,                                       \
                               std::string(#call ": ") + ::linpar::hdf5_error_string()); \
    }                                                                                    \
    return linpar_h5_result_;                                                            \
  }())

namespace linpar {
std::string mpi_error_string(int status);
std::string hdf5_error_string();
}  // namespace linpar
