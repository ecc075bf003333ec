// The two exception types, without fmt, so that CUDA translation units (which
// nvcc cannot compile against fmt's consteval format checks) can throw them.
#pragma once

#include <stdexcept>
#include <string>

namespace linpar {

// Bad input from a user: CLI values, configs, layouts that do not divide,
// corrupt or mismatched checkpoints, missing data. main() prints what() on one
// line and exits with status 2.
class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& what) : std::runtime_error(what) {}
};

// An internal invariant broke: a bug in linpar, not in the user's input.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

[[noreturn]] void internal_error(const char* file, int line, const std::string& what);

}  // namespace linpar
