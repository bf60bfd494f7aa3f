#pragma once
// The background worker behind registration tokens: it issues the secret of
// each new token (registering → active) and records expiry (active →
// expired), publishing each change. Runs on the server's io_context.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>

namespace paddock::server {

class Api;
class ServerContext;

class TokenWorker {
 public:
  TokenWorker(boost::asio::io_context& io, ServerContext& server, Api& api);

  void start();
  void stop();
  // Wakes the worker now (a token was created). Thread-safe.
  void kick();

 private:
  void wait();
  void work();

  ServerContext& server_;
  Api& api_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer timer_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> kicked_{false};
};

}  // namespace paddock::server
