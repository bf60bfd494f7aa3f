#pragma once
// Gives the heap's free pages back to the system after bursts of
// connections. glibc returns memory freed below the top of its heap only
// when asked (malloc_trim). After a reconnect storm every TLS handshake's
// transient memory, tens of KiB, was freed between the long-lived
// connections made at the same time: held but unused, it was most of the
// server's RSS. Runs on the server's io_context.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>

namespace paddock::server {

// When a trim is due: at a look every `period`, once `burst` connections
// came since the last one.
struct TrimRule {
  std::chrono::milliseconds period{10'000};
  std::uint64_t burst = 256;
};

class HeapTrimmer {
 public:
  // `accepted`: connections accepted so far (thread-safe). `trim` gives the
  // pages back: malloc_trim unless a test counts the calls.
  HeapTrimmer(boost::asio::io_context& io, std::function<std::uint64_t()> accepted, TrimRule rule = {},
              std::function<void()> trim = {});

  void start();
  void stop();

 private:
  void wait();
  void check();

  std::function<std::uint64_t()> accepted_;
  TrimRule rule_;
  std::function<void()> trim_;
  std::uint64_t accepted_at_last_trim_ = 0;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer timer_;
  std::atomic<bool> stopped_{false};
};

}  // namespace paddock::server
