#include "server/config.hpp"

#include "common/log.hpp"
#include "common/version.hpp"

#include <CLI/CLI.hpp>

#include <boost/url/parse.hpp>

#include <cstdlib>
#include <iostream>

namespace paddock::server {

namespace {

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : fallback;
}

// "ADDR:PORT", "[v6]:PORT" or ":PORT".
bool parse_listen(const std::string& text, Config& config) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  try {
    std::size_t used = 0;
    int p = std::stoi(port, &used);
    if (used != port.size() || p < 0 || p > 65535) return false;
    config.listen_port = static_cast<std::uint16_t>(p);
  } catch (const std::exception&) {
    return false;
  }
  config.listen_host = host;
  return true;
}

// The installed UI, else the one scripts/setup builds in the source tree.
std::filesystem::path default_web_dir() {
  std::error_code ec;
  for (const char* dir : {PADDOCK_INSTALLED_WEB_DIR, PADDOCK_SOURCE_WEB_DIR}) {
    if (std::filesystem::is_regular_file(std::filesystem::path(dir) / "index.html", ec)) return dir;
  }
  return {};
}

}  // namespace

std::variant<Config, int> parse_config(int argc, char** argv) {
  Config config;
  config.agent_image = std::string("paddock/agent:") + kVersion;
  std::string listen = "0.0.0.0:8443";

  CLI::App app{"paddock-server: registration tokens, hosts and streams for Docker hosts"};
  app.set_version_flag("--version", std::string("paddock-server ") + kVersion);
  app.option_defaults()->always_capture_default();
  app.add_option("--data-dir", config.data_dir, "Directory for the store, keys and certificates")
      ->envname("PADDOCK_DATA_DIR");
  app.add_option("--listen", listen, "Address and port to listen on (port 0: any free port)")
      ->envname("PADDOCK_LISTEN");
  app.add_option("--advertise-url", config.advertise_url,
                 "URL that links and agent commands use (default: from the request's Host)")
      ->envname("PADDOCK_ADVERTISE_URL");
  app.add_option("--tls-cert", config.tls_cert, "PEM certificate chain to serve instead of the server's own CA")
      ->envname("PADDOCK_TLS_CERT");
  app.add_option("--tls-key", config.tls_key, "PEM private key for --tls-cert")->envname("PADDOCK_TLS_KEY");
  app.add_option("--tls-name", config.tls_names, "Extra DNS name or IP for the server's own certificate")
      ->envname("PADDOCK_TLS_NAMES")
      ->delimiter(',');
  bool no_tls = false;
  app.add_flag("--no-tls", no_tls, "Serve plain HTTP (behind a TLS-terminating proxy)")->envname("PADDOCK_NO_TLS");
  app.add_option("--agent-image", config.agent_image, "Agent image named in registration commands")
      ->envname("PADDOCK_AGENT_IMAGE");
  app.add_option("--rate-limit", config.rate_limit, "Requests a minute per credential (0: off)")
      ->envname("PADDOCK_RATE_LIMIT")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--stream-token-ttl", config.stream_token_ttl, "Seconds a stream token may take to open")
      ->envname("PADDOCK_STREAM_TOKEN_TTL")
      ->check(CLI::Range(1, 3600));
  app.add_option("--max-connections", config.max_connections, "Open connections accepted at once")
      ->envname("PADDOCK_MAX_CONNECTIONS")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--max-websockets-per-account", config.max_websockets_per_account,
                 "Streams and subscriptions an account (or a project key) may hold open at once (0: no limit)")
      ->envname("PADDOCK_MAX_WEBSOCKETS_PER_ACCOUNT")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--threads", config.threads, "Worker threads (0: one per core)")
      ->envname("PADDOCK_THREADS")
      ->check(CLI::Range(0, 256));
  app.add_option("--log-level", config.log_level, "trace, debug, info, warn or error")
      ->envname("PADDOCK_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  std::string web_dir;
  app.add_option("--web-dir", web_dir,
                 std::string("Directory of the API UI's files (default: ") + PADDOCK_INSTALLED_WEB_DIR +
                     ", else the source tree's web/dist)")
      ->envname("PADDOCK_WEB_DIR");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "paddock-server: " << e.what() << " (see --help)\n";
    return 2;
  }

  auto fail = [](const std::string& message) {
    std::cerr << "paddock-server: " << message << "\n";
    return 2;
  };
  if (!parse_listen(listen, config)) return fail("--listen must be ADDR:PORT, got '" + listen + "'");
  config.tls = !no_tls;
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return fail("--tls-cert and --tls-key go together");
  }
  if (no_tls && !config.tls_cert.empty()) return fail("--no-tls cannot be combined with --tls-cert");
  if (!config.advertise_url.empty()) {
    auto url = boost::urls::parse_absolute_uri(config.advertise_url);
    if (!url || (url->scheme() != "https" && url->scheme() != "http") || url->host().empty() ||
        !url->query().empty()) {
      return fail("--advertise-url must be an absolute http(s) URL, got '" + config.advertise_url + "'");
    }
    while (!config.advertise_url.empty() && config.advertise_url.back() == '/') config.advertise_url.pop_back();
  }
  if (config.data_dir.empty()) return fail("--data-dir must not be empty");
  config.admin_access_key = env_or("PADDOCK_ADMIN_ACCESS_KEY", "");
  config.admin_secret_key = env_or("PADDOCK_ADMIN_SECRET_KEY", "");
  if (config.admin_access_key.empty() != config.admin_secret_key.empty()) {
    return fail("PADDOCK_ADMIN_ACCESS_KEY and PADDOCK_ADMIN_SECRET_KEY go together");
  }
  config.web_dir = web_dir.empty() ? default_web_dir() : std::filesystem::path(web_dir);
  if (!log::set_level(config.log_level)) return fail("unknown --log-level " + config.log_level);
  return config;
}

}  // namespace paddock::server
