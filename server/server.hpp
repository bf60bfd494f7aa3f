#pragma once
// paddock-server assembled: store, keys, TLS, the API and its workers on one
// io_context. main() builds a Server from the Config and runs it.

#include "server/config.hpp"

#include <memory>

namespace paddock::server {

class Server {
 public:
  explicit Server(Config config);
  ~Server();

  // Opens everything, listens, and serves until SIGTERM or SIGINT; then
  // stops gracefully. Returns the process exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace paddock::server
