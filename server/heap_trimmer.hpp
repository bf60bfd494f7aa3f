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
#include <cstdint>
#include <functional>

namespace paddock::server {

class HeapTrimmer {
 public:
  // `accepted`: connections accepted so far. Thread-safe.
  HeapTrimmer(boost::asio::io_context& io, std::function<std::uint64_t()> accepted);

  void start();
  void stop();

  static constexpr auto kPeriod = std::chrono::seconds(10);
  // Connections accepted since the last trim that make a burst.
  static constexpr std::uint64_t kBurst = 256;

 private:
  void wait();
  void check();

  std::function<std::uint64_t()> accepted_;
  std::uint64_t accepted_at_last_trim_ = 0;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer timer_;
  std::atomic<bool> stopped_{false};
};

}  // namespace paddock::server
