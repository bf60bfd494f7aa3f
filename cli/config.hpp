#pragma once
// Where the CLI finds its server and credentials: flags first, then the
// PADDOCK_* environment, checked once before any request is made.

#include "common/result.hpp"

#include <functional>
#include <optional>
#include <string>

namespace paddock::cli {

enum class OutputFormat { table, json };

// The global options as given on the command line; empty means "not given".
struct GlobalFlags {
  std::string url;
  std::string access_key;
  std::string secret_key;
  std::string ca_checksum;
  std::string ca_file;
  std::string project;
  std::string output = "table";
};

// What every command runs with, validated.
struct Config {
  std::string url;          // scheme://authority, no trailing "/" and no "/v1"
  std::string access_key;
  std::string secret_key;
  std::string ca_checksum;  // lowercase sha256 hex of ca.pem; empty: none
  std::string ca_file;      // a CA to pin; empty: none
  std::string project;      // id or name for X-API-Project-Id; empty: none
  OutputFormat output = OutputFormat::table;
};

// Reads one environment variable; nullopt when unset.
using Getenv = std::function<std::optional<std::string>(const char* name)>;
std::optional<std::string> system_getenv(const char* name);

// Merges flags over PADDOCK_URL, PADDOCK_ACCESS_KEY, PADDOCK_SECRET_KEY and
// PADDOCK_CA_CHECKSUM. Every failure is Errc::invalid_input with one line
// that says which flag or variable to fix (a usage error).
Result<Config> load_config(const GlobalFlags& flags, const Getenv& getenv = system_getenv);

// "https://h:8443/", "https://h:8443/v1" -> "https://h:8443". Fails for
// anything but an absolute http(s) URL without user info, query or fragment.
Result<std::string> normalize_server_url(std::string_view text);

}  // namespace paddock::cli
