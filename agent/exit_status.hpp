#pragma once
// How the agent ends: 0 a clean stop, 1 an unexpected failure, 2 refused for
// a reason a person must fix, with one line saying what to do.

#include <string>

namespace paddock::agent {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitRefused = 2;

struct ExitStatus {
  int code = kExitOk;
  std::string message;  // empty for a clean stop
};

}  // namespace paddock::agent
