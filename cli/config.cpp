#include "cli/config.hpp"

#include "common/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace paddock::cli {

namespace {

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

// The flag if given, else the variable, else empty.
std::string pick(const std::string& flag, const Getenv& getenv, const char* variable) {
  if (!flag.empty()) return flag;
  if (auto value = getenv(variable)) return trim(*value);
  return {};
}

}  // namespace

std::optional<std::string> system_getenv(const char* name) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read once at start-up
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

Result<std::string> normalize_server_url(std::string_view text) {
  std::string s = trim(text);
  auto url = http_client::parse_url(s);
  if (!url) return url.error();
  if (url->scheme != "http" && url->scheme != "https") {
    return fail(Errc::invalid_input, "the server URL must start with https:// or http://");
  }
  std::string path = url->target;
  if (path.find('?') != std::string::npos) {
    return fail(Errc::invalid_input, "the server URL must not have a query: " + s);
  }
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, "/v1") == 0) path.resize(path.size() - 3);
  while (!path.empty() && path.back() == '/') path.pop_back();
  return url->origin() + path;
}

Result<Config> load_config(const GlobalFlags& flags, const Getenv& getenv) {
  Config c;
  const std::string url = pick(flags.url, getenv, "PADDOCK_URL");
  if (url.empty()) return fail(Errc::invalid_input, "no server URL: set PADDOCK_URL or pass --url");
  auto normalized = normalize_server_url(url);
  if (!normalized) return fail(Errc::invalid_input, "bad server URL: " + normalized.error().message);
  c.url = std::move(*normalized);

  c.access_key = pick(flags.access_key, getenv, "PADDOCK_ACCESS_KEY");
  c.secret_key = pick(flags.secret_key, getenv, "PADDOCK_SECRET_KEY");
  if (c.access_key.empty()) return fail(Errc::invalid_input, "no access key: set PADDOCK_ACCESS_KEY or pass --access-key");
  if (c.secret_key.empty()) return fail(Errc::invalid_input, "no secret key: set PADDOCK_SECRET_KEY or pass --secret-key");

  c.ca_file = flags.ca_file;
  if (!flags.ca_file.empty() && !flags.ca_checksum.empty()) {
    return fail(Errc::invalid_input, "--ca-file and --ca-checksum exclude each other: use one");
  }
  // A CA file on the command line overrides a checksum from the environment.
  if (c.ca_file.empty()) {
    // Built in place: GCC 12 warns falsely (-Warray-bounds) on moving a local string in.
    std::string& sum = c.ca_checksum;
    sum = pick(flags.ca_checksum, getenv, "PADDOCK_CA_CHECKSUM");
    std::transform(sum.begin(), sum.end(), sum.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    const bool hex = std::all_of(sum.begin(), sum.end(),
                                 [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)) != 0; });
    if (!sum.empty() && (sum.size() != 64 || !hex)) {
      return fail(Errc::invalid_input, "the CA checksum must be 64 hex digits (the sha256 of the server's ca.pem)");
    }
  }

  c.project = trim(flags.project);
  if (flags.output == "json") {
    c.output = OutputFormat::json;
  } else if (flags.output == "table" || flags.output.empty()) {
    c.output = OutputFormat::table;
  } else {
    return fail(Errc::invalid_input, "-o must be json or table, not '" + flags.output + "'");
  }
  return c;
}

}  // namespace paddock::cli
