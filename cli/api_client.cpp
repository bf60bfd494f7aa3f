#include "cli/api_client.hpp"

#include "common/crypto.hpp"

#include <cctype>
#include <fstream>
#include <sstream>

namespace paddock::cli {

namespace {

ApiError transport_error(const Error& e) {
  ApiError out;
  out.message = e.message;
  return out;
}

bool absolute(std::string_view s) {
  return s.starts_with("https://") || s.starts_with("http://");
}

}  // namespace

std::string ApiError::describe() const {
  if (status == 0) return message;
  if (status == 401) {
    return "the server refused the credentials (401 Unauthorized): check PADDOCK_ACCESS_KEY and PADDOCK_SECRET_KEY";
  }
  std::string out = message.empty() ? "the server answered " + std::to_string(status) : message;
  out += " (" + std::to_string(status);
  if (!code.empty()) out += " " + code;
  if (!field_name.empty()) out += ", field " + field_name;
  out += ")";
  return out;
}

ApiError api_error_from(const http_client::Response& response) {
  ApiError e;
  e.status = response.status;
  auto body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object()) {
    e.code = str(body, "code");
    e.message = str(body, "message");
    e.field_name = str(body, "fieldName");
  }
  // Untrusted text ends up on a terminal: no control characters.
  for (auto* s : {&e.code, &e.message, &e.field_name}) {
    for (char& c : *s) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    if (s->size() > 500) s->resize(500);
  }
  return e;
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string str(const json& resource, std::string_view field, std::string_view fallback) {
  if (!resource.is_object()) return std::string(fallback);
  auto it = resource.find(field);
  if (it == resource.end() || !it->is_string()) return std::string(fallback);
  return it->get<std::string>();
}

ApiClient::Transport ApiClient::network_transport() {
  return [](std::string_view method, std::string_view url, const http_client::Headers& headers, std::string_view body,
            const tls::ClientTrust& trust) { return http_client::request(method, url, headers, body, trust); };
}

ApiClient::ApiClient(Config config, Transport transport)
    : config_(std::move(config)), transport_(std::move(transport)), project_id_(config_.project) {}

std::string ApiClient::url(std::string_view path_or_url, const Query& query) const {
  std::string out = absolute(path_or_url) ? std::string(path_or_url) : config_.url + std::string(path_or_url);
  char sep = out.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [k, v] : query) {
    out += sep;
    out += url_encode(k);
    out += '=';
    out += url_encode(v);
    sep = '&';
  }
  return out;
}

ApiResult<tls::ClientTrust> ApiClient::trust() {
  if (trust_) return *trust_;
  if (!config_.url.starts_with("https://")) {
    trust_ = tls::ClientTrust::system();
    return *trust_;
  }
  if (!config_.ca_file.empty()) {
    std::ifstream in(config_.ca_file, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      return transport_error(fail(Errc::io, "cannot read the CA file " + config_.ca_file));
    }
    trust_ = tls::ClientTrust::pinned(pem.str());
    return *trust_;
  }
  if (config_.ca_checksum.empty()) {
    trust_ = tls::ClientTrust::system();
    return *trust_;
  }
  // The one unverified request: its answer is trusted only if the checksum matches.
  const std::string where = config_.url + "/v1/cacerts";
  auto res = transport_(std::string_view("GET"), where, {}, {}, tls::ClientTrust::insecure());
  if (!res) return transport_error(res.error());
  if (res->status != 200) {
    ApiError e = api_error_from(*res);
    e.message = "cannot fetch the server's CA certificate from " + where + ": " + e.describe() +
                " (a server with an operator's certificate has no CA to pin: drop --ca-checksum)";
    e.status = 0;
    return e;
  }
  const std::string got = crypto::sha256_hex(res->body);
  if (!crypto::constant_time_equals(got, config_.ca_checksum)) {
    return transport_error(fail(Errc::forbidden, "the server's CA certificate does not match the CA checksum "
                                                 "(expected " + config_.ca_checksum + ", got " + got +
                                                 "): refusing to talk to " + config_.url));
  }
  trust_ = tls::ClientTrust::pinned(res->body);
  return *trust_;
}

ApiResult<json> ApiClient::call(std::string_view method, std::string_view path_or_url, const Query& query,
                                 const std::optional<json>& body) {
  auto t = trust();
  if (!t) return t.error();
  http_client::Headers headers = {
      {"Authorization", "Basic " + crypto::base64_encode(config_.access_key + ":" + config_.secret_key)},
      {"Accept", "application/json"},
  };
  if (!project_id_.empty()) headers.emplace_back("X-API-Project-Id", project_id_);
  std::string payload;
  if (body) {
    headers.emplace_back("Content-Type", "application/json");
    payload = body->dump();
  }
  auto res = transport_(method, url(path_or_url, query), headers, payload, *t);
  if (!res) return transport_error(res.error());
  if (res->status < 200 || res->status >= 300) return api_error_from(*res);
  auto parsed = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    ApiError e;
    e.message = "the server sent a reply that is not JSON (HTTP " + std::to_string(res->status) + ")";
    return e;
  }
  return parsed;
}

ApiResult<json> ApiClient::get(std::string_view path_or_url, const Query& query) {
  return call("GET", path_or_url, query, std::nullopt);
}

ApiResult<json> ApiClient::post(std::string_view path_or_url, const json& body) {
  return call("POST", path_or_url, {}, body);
}

ApiResult<json> ApiClient::remove(std::string_view path_or_url) { return call("DELETE", path_or_url, {}, std::nullopt); }

ApiResult<std::vector<json>> ApiClient::list(std::string_view path_or_url, Query query) {
  bool has_limit = false;
  for (const auto& [k, v] : query) has_limit = has_limit || k == "limit";
  if (!has_limit) query.emplace_back("limit", "1000");
  std::vector<json> out;
  auto page = get(path_or_url, query);
  // A collection that keeps growing under us still ends: pages are bounded.
  for (int pages = 0; pages < 10000; ++pages) {
    if (!page) return page.error();
    if (!page->is_object() || !page->contains("data") || !(*page)["data"].is_array()) {
      ApiError e;
      e.message = "the server sent something that is not a collection";
      return e;
    }
    for (auto& r : (*page)["data"]) out.push_back(std::move(r));
    auto pagination = page->find("pagination");
    if (pagination == page->end() || !pagination->is_object()) break;
    const std::string next = str(*pagination, "next");
    if (next.empty()) break;
    page = get(next);
  }
  return out;
}

}  // namespace paddock::cli
