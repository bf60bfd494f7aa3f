#include "cli/terminal.hpp"

#include <atomic>
#include <cerrno>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace paddock::cli::terminal {

namespace {

// What emergency_restore() needs, readable from a signal handler.
std::atomic<bool> g_raw{false};
int g_raw_fd = -1;
termios g_saved{};

}  // namespace

bool is_terminal(int fd) { return ::isatty(fd) == 1; }

std::optional<Size> window_size(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0 || ws.ws_row == 0) return std::nullopt;
  return Size{ws.ws_col, ws.ws_row};
}

RawModeGuard::RawModeGuard(int fd) : fd_(fd) {
  if (!is_terminal(fd) || ::tcgetattr(fd, &saved_) != 0) return;
  termios raw = saved_;
  ::cfmakeraw(&raw);
  // Keep output post-processing off too: the remote pty already turned
  // "\n" into "\r\n".
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  g_saved = saved_;
  g_raw_fd = fd;
  g_raw.store(true);
  if (::tcsetattr(fd, TCSADRAIN, &raw) != 0) {
    g_raw.store(false);
    return;
  }
  active_ = true;
}

RawModeGuard::~RawModeGuard() { restore(); }

void RawModeGuard::restore() noexcept {
  if (!active_) return;
  active_ = false;
  g_raw.store(false);
  ::tcsetattr(fd_, TCSADRAIN, &saved_);
}

void emergency_restore() noexcept {
  if (g_raw.exchange(false)) ::tcsetattr(g_raw_fd, TCSANOW, &g_saved);
}

FdFlagsGuard::FdFlagsGuard(int fd) : fd_(fd), flags_(::fcntl(fd, F_GETFL)) {}

FdFlagsGuard::~FdFlagsGuard() {
  if (flags_ != -1) ::fcntl(fd_, F_SETFL, flags_);
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, -1);
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace paddock::cli::terminal
