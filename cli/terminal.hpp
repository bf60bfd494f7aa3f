#pragma once
// The local terminal for interactive streams: raw mode that is always undone
// (RAII, plus a last-resort restore for std::terminate), the window size,
// and writes that survive a non-blocking descriptor.

#include <cstddef>
#include <optional>
#include <string_view>

#include <termios.h>

namespace paddock::cli::terminal {

bool is_terminal(int fd);

struct Size {
  unsigned width = 0;
  unsigned height = 0;
};
// The window size of the terminal on `fd`; nullopt when it is none.
std::optional<Size> window_size(int fd);

// Puts the terminal on `fd` in raw mode for its lifetime and restores the
// saved mode (and the descriptor's file status flags, which an event loop may
// have made non-blocking) when destroyed. Does nothing when `fd` is no
// terminal. Only one may be active at a time; not thread-safe.
class RawModeGuard {
 public:
  explicit RawModeGuard(int fd);
  ~RawModeGuard();
  RawModeGuard(const RawModeGuard&) = delete;
  RawModeGuard& operator=(const RawModeGuard&) = delete;

  bool active() const { return active_; }
  // Restores now; the destructor then does nothing. Async-signal-safe.
  void restore() noexcept;

 private:
  int fd_;
  bool active_ = false;
  termios saved_{};
};

// Saves a descriptor's file status flags (O_NONBLOCK in particular: the
// terminal's open file is shared with the shell) and puts them back.
class FdFlagsGuard {
 public:
  explicit FdFlagsGuard(int fd);
  ~FdFlagsGuard();
  FdFlagsGuard(const FdFlagsGuard&) = delete;
  FdFlagsGuard& operator=(const FdFlagsGuard&) = delete;

 private:
  int fd_;
  int flags_ = -1;
};

// Restores whatever RawModeGuard is active: for std::terminate handlers.
// Async-signal-safe.
void emergency_restore() noexcept;

// Writes all of `data` to `fd`, waiting out EINTR and EAGAIN. False when the
// descriptor is closed (EPIPE) or fails.
bool write_all(int fd, std::string_view data);

}  // namespace paddock::cli::terminal
