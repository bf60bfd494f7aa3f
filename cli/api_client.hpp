#pragma once
// A small synchronous client of the REST API for the CLI: HTTP Basic auth,
// JSON in and out, the server's CA trust (pinned file or checksum-compared
// fetch of /v1/cacerts, once per process), pagination, and API errors turned
// into one line for a person. Not thread-safe: one per command run.

#include "cli/config.hpp"
#include "common/http_client.hpp"
#include "common/result.hpp"
#include "common/tls.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paddock::cli {

using nlohmann::json;

// A failed API call: an HTTP error answer, or no usable answer at all.
struct ApiError {
  unsigned status = 0;     // HTTP status; 0 when the server never answered usefully
  std::string code;        // the error body's "code" ("NotFound"), if any
  std::string message;     // the error body's "message", or the transport failure
  std::string field_name;  // the error body's "fieldName", if any

  // One line: "unknown field (422 InvalidFilter, field dockerId_x)".
  std::string describe() const;
};

template <class T>
using ApiResult = Result<T, ApiError>;

// Builds an ApiError from an HTTP error response.
ApiError api_error_from(const http_client::Response& response);

// Query parameters, in order; values are percent-encoded when the URL is built.
using Query = std::vector<std::pair<std::string, std::string>>;

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view text);

class ApiClient {
 public:
  // How bytes reach the server; replaced in tests by canned answers.
  using Transport = std::function<Result<http_client::Response>(
      std::string_view method, std::string_view url, const http_client::Headers& headers, std::string_view body,
      const tls::ClientTrust& trust)>;
  static Transport network_transport();

  explicit ApiClient(Config config, Transport transport = network_transport());

  const Config& config() const { return config_; }

  // `path` ("/v1/hosts") is joined to the server URL; an absolute URL (a link
  // from a resource) is used as it is. `query` is appended, encoded.
  std::string url(std::string_view path_or_url, const Query& query = {}) const;

  ApiResult<json> get(std::string_view path_or_url, const Query& query = {});
  ApiResult<json> post(std::string_view path_or_url, const json& body);
  ApiResult<json> remove(std::string_view path_or_url);
  // Every resource of a collection, following pagination.next (limit 1000).
  ApiResult<std::vector<json>> list(std::string_view path_or_url, Query query = {});

  // The trust every connection to this server uses, WebSockets included:
  // established on first use (reads --ca-file, or fetches /v1/cacerts once
  // without verification and compares its sha256 with the checksum).
  ApiResult<tls::ClientTrust> trust();

  // Sends X-API-Project-Id: `project_id` from now on (empty: none).
  void set_project_id(std::string project_id) { project_id_ = std::move(project_id); }
  const std::string& project_id() const { return project_id_; }

 private:
  ApiResult<json> call(std::string_view method, std::string_view path_or_url, const Query& query,
                       const std::optional<json>& body);

  Config config_;
  Transport transport_;
  std::optional<tls::ClientTrust> trust_;
  std::string project_id_;
};

// A resource's string field, or `fallback` when absent or not a string.
std::string str(const json& resource, std::string_view field, std::string_view fallback = "");

}  // namespace paddock::cli
