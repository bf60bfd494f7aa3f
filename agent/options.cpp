#include "agent/options.hpp"

#include "agent/messages.hpp"
#include "common/http_client.hpp"
#include "common/version.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/ip/address.hpp>

#include <cctype>
#include <cstdlib>
#include <ostream>
#include <vector>

namespace paddock::agent {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool is_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool valid_label_key(std::string_view key) {
  if (key.empty() || key.size() > 128) return false;
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (!std::isalnum(u) && c != '.' && c != '_' && c != '-' && c != '/') return false;
  }
  return true;
}

}  // namespace

Result<std::chrono::milliseconds> parse_interval(std::string_view text) {
  auto bad = [&] {
    return fail(Errc::invalid_input, "'" + std::string(text.substr(0, 40)) +
                                         "' is not an interval (like 30s, 5m, 500ms or plain seconds)");
  };
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 9) return bad();
  const std::int64_t n = std::stoll(std::string(text.substr(0, digits)));
  const std::string_view unit = text.substr(digits);
  std::int64_t ms = 0;
  if (unit.empty() || unit == "s") {
    ms = n * 1000;
  } else if (unit == "ms") {
    ms = n;
  } else if (unit == "m") {
    ms = n * 60 * 1000;
  } else if (unit == "h") {
    ms = n * 3600 * 1000;
  } else {
    return bad();
  }
  if (ms < 100 || ms > 24LL * 3600 * 1000) {
    return fail(Errc::invalid_input, "the report interval must be between 100ms and 24h, got '" +
                                         std::string(text) + "'");
  }
  return std::chrono::milliseconds(ms);
}

Status add_label(std::map<std::string, std::string>& labels, std::string_view item) {
  const auto eq = item.find('=');
  if (eq == std::string_view::npos) {
    return fail(Errc::invalid_input, "label '" + std::string(item.substr(0, 140)) + "' is not key=value");
  }
  const std::string_view key = item.substr(0, eq);
  const std::string_view value = item.substr(eq + 1);
  if (!valid_label_key(key)) {
    return fail(Errc::invalid_input, "label key '" + std::string(key.substr(0, 140)) +
                                         "' must be 1-128 characters of A-Z a-z 0-9 . _ - /");
  }
  if (value.size() > 1024) return fail(Errc::invalid_input, "label '" + std::string(key) + "' is over 1024 bytes");
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return fail(Errc::invalid_input, "label '" + std::string(key) + "' holds a control character");
    }
  }
  labels[std::string(key)] = std::string(value);
  return Ok{};
}

Status add_labels_list(std::map<std::string, std::string>& labels, std::string_view list) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) {
      if (auto st = add_label(labels, item); !st) return st;
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return Ok{};
}

std::variant<Options, int> parse_options(int argc, const char* const* argv, std::ostream& out,
                                         std::ostream& err) {
  Options o;
  std::string state_dir = o.state_dir.string();
  std::vector<std::string> labels;
  std::string interval = "30s";

  CLI::App app{"paddock-agent: registers this Docker host with a Paddock server and reports to it"};
  app.set_version_flag("--version", std::string("paddock-agent ") + kVersion);
  app.option_defaults()->always_capture_default();
  app.add_option("REGISTRATION_URL", o.registration_url,
                 "The registration URL from the server's command (default: use the stored state)")
      ->envname("PADDOCK_URL");
  app.add_option("--state-dir", state_dir, "Where the agent keeps its identity")->envname("PADDOCK_STATE_DIR");
  app.add_option("--ca-checksum", o.ca_checksum,
                 "sha256 of the server's CA certificate (default: trust the system's store)")
      ->envname("PADDOCK_CA_CHECKSUM");
  app.add_option("--label", labels, "A host label key=value (repeatable; env PADDOCK_HOST_LABELS=k=v,k2=v2)")
      ->allow_extra_args(false);
  app.add_option("--agent-ip", o.agent_ip, "The IP address to report (default: detected)")
      ->envname("PADDOCK_AGENT_IP");
  app.add_option("--hostname", o.hostname, "The host name to report (default: the machine's)")
      ->envname("PADDOCK_HOSTNAME");
  app.add_option("--report-interval", interval, "How often to report resource usage (30s, 5m, 500ms)")
      ->envname("PADDOCK_REPORT_INTERVAL");
  auto* log_level = app.add_option("--log-level", o.log_level, "trace, debug, info, warn or error (default: info; warn with --bootstrap)")
      ->envname("PADDOCK_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_flag("--bootstrap", o.bootstrap,
               "Register, start the long-running paddock-agent container through Docker, and exit "
               "(what the agent image does)")
      ->envname("PADDOCK_BOOTSTRAP");
  app.footer("The Docker endpoint comes from DOCKER_HOST (default unix:///var/run/docker.sock).\n"
             "Exit codes: 0 a clean stop, 1 an unexpected failure, 2 refused (the line printed says what to do).");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    err << "paddock-agent: " << e.what() << " (see --help)\n";
    return 2;
  }

  auto usage = [&err](const std::string& message) {
    err << "paddock-agent: " << message << "\n";
    return 2;
  };
  if (state_dir.empty()) return usage("--state-dir must not be empty");
  o.state_dir = state_dir;
  if (!o.registration_url.empty()) {
    auto url = http_client::parse_url(o.registration_url);
    if (!url || (url->scheme != "http" && url->scheme != "https")) {
      return usage("the registration URL must be an http(s) URL like https://server:8443/v1/scripts/<token>, got '" +
                   redact_registration_secrets(o.registration_url.substr(0, 200)) + "'");
    }
  }
  if (!o.ca_checksum.empty()) {
    if (!is_hex64(o.ca_checksum)) return usage("--ca-checksum must be 64 hex digits (sha256)");
    o.ca_checksum = lower(o.ca_checksum);
  }
  if (labels.empty()) {
    if (auto st = add_labels_list(o.labels, env("PADDOCK_HOST_LABELS")); !st) return usage(st.error().message);
  } else {
    for (const auto& l : labels) {
      if (auto st = add_label(o.labels, l); !st) return usage(st.error().message);
    }
  }
  if (!o.agent_ip.empty()) {
    boost::system::error_code ec;
    auto address = boost::asio::ip::make_address(o.agent_ip, ec);
    if (ec) return usage("--agent-ip '" + o.agent_ip.substr(0, 80) + "' is not an IP address");
    o.agent_ip = address.to_string();
  }
  if (o.hostname.size() > 253) return usage("--hostname is over 253 characters");
  auto parsed_interval = parse_interval(interval);
  if (!parsed_interval) return usage("--report-interval: " + parsed_interval.error().message);
  o.report_interval = *parsed_interval;
  o.docker_host = env("DOCKER_HOST");
  o.log_level_given = log_level->count() > 0;
  return o;
}

}  // namespace paddock::agent
