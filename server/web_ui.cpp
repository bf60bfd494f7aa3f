#include "server/web_ui.hpp"

#include <boost/beast/http/field.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

namespace paddock::server {

namespace http = boost::beast::http;

namespace {

constexpr std::size_t kMaxFiles = 2000;
constexpr std::uintmax_t kMaxTotalBytes = 64ull * 1024 * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "0.8" → 800; anything malformed counts as 0 (not acceptable).
int parse_q(std::string_view text) {
  text = trim(text);
  if (text.empty() || text.size() > 5) return 0;
  if (text[0] == '1') return 1000;
  if (text[0] != '0') return 0;
  int value = 0;
  int scale = 100;
  for (std::size_t i = 2; i < text.size() && scale > 0; ++i, scale /= 10) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return 0;
    value += (text[i] - '0') * scale;
  }
  if (text.size() > 1 && text[1] != '.') return 0;
  return value;
}

}  // namespace

bool prefers_html(std::string_view accept) {
  int html_q = -1;
  int json_q = -1, json_specificity = -1;
  std::size_t start = 0;
  while (start <= accept.size()) {
    auto end = accept.find(',', start);
    std::string_view item = accept.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    start = end == std::string_view::npos ? accept.size() + 1 : end + 1;
    auto semi = item.find(';');
    std::string range = lower(trim(item.substr(0, semi)));
    int q = 1000;
    while (semi != std::string_view::npos) {
      auto next = item.find(';', semi + 1);
      std::string param = lower(trim(item.substr(semi + 1, next == std::string_view::npos ? next : next - semi - 1)));
      if (param.rfind("q=", 0) == 0) q = parse_q(std::string_view(param).substr(2));
      semi = next;
    }
    if (range == "text/html") {
      html_q = std::max(html_q, q);
    } else {
      int specificity = range == "application/json" ? 2 : range == "application/*" ? 1 : range == "*/*" ? 0 : -1;
      if (specificity > json_specificity) {
        json_specificity = specificity;
        json_q = q;
      }
    }
  }
  return html_q > 0 && html_q > json_q;
}

std::optional<std::string> asset_content_type(std::string_view path) {
  if (path.empty() || path.size() > 200) return std::nullopt;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    std::string_view seg = path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (seg.empty() || seg.front() == '.') return std::nullopt;
    for (char c : seg) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return std::nullopt;
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  auto dot = path.rfind('.');
  if (dot == std::string_view::npos || path.find('/', dot) != std::string_view::npos) return std::nullopt;
  static const std::map<std::string, std::string, std::less<>> kTypes = {
      {"html", "text/html; charset=utf-8"},      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"}, {"css", "text/css; charset=utf-8"},
      {"svg", "image/svg+xml"},                  {"png", "image/png"},
      {"ico", "image/x-icon"},                   {"json", "application/json"},
      {"txt", "text/plain; charset=utf-8"},      {"woff2", "font/woff2"},
  };
  auto it = kTypes.find(path.substr(dot + 1));
  if (it == kTypes.end()) return std::nullopt;
  return it->second;
}

WebUi::WebUi(const std::filesystem::path& dir) {
  std::error_code ec;
  if (dir.empty() || !std::filesystem::is_directory(dir, ec)) {
    spdlog::warn("API UI not served: no web directory{}{} (set --web-dir); the JSON API works without it",
                 dir.empty() ? "" : " at ", dir.string());
    return;
  }
  std::uintmax_t total = 0;
  auto options = std::filesystem::directory_options::skip_permission_denied;
  for (std::filesystem::recursive_directory_iterator it(dir, options, ec), end; !ec && it != end; it.increment(ec)) {
    const auto& entry = *it;
    // Symlinks are neither followed nor served: only what is really below dir.
    if (entry.is_symlink(ec) || !entry.is_regular_file(ec)) continue;
    std::string relative = entry.path().lexically_relative(dir).generic_string();
    auto type = asset_content_type(relative);
    if (!type) continue;
    total += entry.file_size(ec);
    if (files_.size() >= kMaxFiles || total > kMaxTotalBytes) {
      spdlog::warn("API UI: {} holds more than the UI needs; serving the first {} files", dir.string(),
                   files_.size());
      break;
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    if (!in) continue;
    File file{body.str(), *type, {}};
    // FNV-1a of the content: changes with it, costs nothing to compute once.
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : file.body) h = (h ^ c) * 1099511628211ull;
    char hex[17];
    auto [p, errc] = std::to_chars(hex, hex + 16, h, 16);
    (void)errc;
    file.etag = "\"" + std::string(hex, p) + "\"";
    files_.emplace(std::move(relative), std::move(file));
  }
  if (!available()) {
    spdlog::warn("API UI not served: no index.html in {} (run scripts/setup); the JSON API works without it",
                 dir.string());
    files_.clear();
    return;
  }
  spdlog::info("API UI: serving {} files from {}", files_.size(), dir.string());
}

HttpResponse WebUi::file_response(const HttpRequest& request, const File& file, int status) const {
  HttpResponse res{static_cast<http::status>(status), request.version()};
  res.set(http::field::server, "paddock");
  res.set(http::field::content_type, file.content_type);
  res.set(http::field::etag, file.etag);
  // Names are not content-hashed: revalidate every time (cheap with the ETag).
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set("X-Frame-Options", "DENY");
  res.set("Cross-Origin-Opener-Policy", "same-origin");
  // Scripts only from the UI's own files; xterm.js sets styles at run time.
  res.set("Content-Security-Policy",
          "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
          "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  res.keep_alive(request.keep_alive());
  if (status == 200 && request[http::field::if_none_match] == file.etag) {
    res.result(http::status::not_modified);
    return res;
  }
  if (request.method() == http::verb::head) {
    res.content_length(file.body.size());
    return res;
  }
  res.body() = file.body;
  return res;
}

HttpResponse WebUi::page(const HttpRequest& request, int status) const {
  auto res = file_response(request, files_.at("index.html"), status);
  res.set(http::field::vary, "Accept");
  if (status == 401) res.set(http::field::www_authenticate, "Basic realm=\"paddock\"");
  return res;
}

HttpResponse WebUi::asset(const HttpRequest& request, std::string_view relative) const {
  auto it = asset_content_type(relative) ? files_.find(relative) : files_.end();
  if (it == files_.end() || (request.method() != http::verb::get && request.method() != http::verb::head)) {
    HttpResponse res{it == files_.end() ? http::status::not_found : http::status::method_not_allowed,
                     request.version()};
    res.set(http::field::server, "paddock");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.set("X-Content-Type-Options", "nosniff");
    res.keep_alive(request.keep_alive());
    res.body() = it == files_.end() ? "not found\n" : "method not allowed\n";
    return res;
  }
  return file_response(request, it->second, 200);
}

HttpResponse WebUi::redirect(const HttpRequest& request, const std::string& location) const {
  HttpResponse res{http::status::found, request.version()};
  res.set(http::field::server, "paddock");
  res.set(http::field::location, location);
  res.set(http::field::vary, "Accept");
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.keep_alive(request.keep_alive());
  res.body() = "see " + location + "\n";
  return res;
}

}  // namespace paddock::server
