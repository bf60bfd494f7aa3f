#pragma once
// paddock-server's configuration: flags, each also a PADDOCK_* variable.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace paddock::server {

struct Config {
  std::filesystem::path data_dir = "/var/lib/paddock-server";
  std::string listen_host = "0.0.0.0";
  std::uint16_t listen_port = 8443;
  bool tls = true;
  std::string tls_cert, tls_key;        // the operator's own; empty: the server's CA
  std::vector<std::string> tls_names;   // extra names for the server's own certificate
  std::string advertise_url;            // empty: from each request's Host
  std::string agent_image;              // default paddock/agent:<version>
  std::int64_t rate_limit = 100;        // requests a minute per credential; 0 = off
  std::int64_t stream_token_ttl = 60;   // seconds to open a stream
  std::int64_t max_connections = 20000;
  std::int64_t max_websockets_per_account = 128;  // streams and subscriptions; 0 = no limit
  unsigned threads = 0;                 // 0: one per core
  std::string log_level = "info";
  std::filesystem::path web_dir;       // the API UI's files; empty: none found
  std::string admin_access_key, admin_secret_key;  // preset bootstrap key (env only)
};

// Parses flags and PADDOCK_* variables (flags win). Returns the Config, or
// the process exit code when it should stop (after --help, --version, or a
// one-line error on stderr).
std::variant<Config, int> parse_config(int argc, char** argv);

}  // namespace paddock::server
