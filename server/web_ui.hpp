#pragma once
// The API UI: a browser asking for HTML at any /v1 URL gets the UI's page,
// which then asks the same URL for JSON. The UI's files are read once at
// start from a directory (--web-dir) and served under /ui/.

#include "server/http_server.hpp"

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace paddock::server {

// True when an Accept header prefers text/html to JSON: text/html named
// with a q-value above zero and above what application/json gets (itself or
// through application/* or */*). "*/*" alone stays JSON.
bool prefers_html(std::string_view accept);

// The Content-Type for a relative asset path, or nullopt unless every
// segment is a plain name ([A-Za-z0-9_.-], not starting with '.') and the
// extension is one the UI uses.
std::optional<std::string> asset_content_type(std::string_view relative_path);

class WebUi {
 public:
  // Loads every allowed regular file below `dir` (symlinks are skipped, so
  // nothing outside it is reachable). Logs what it serves, or why not.
  explicit WebUi(const std::filesystem::path& dir);

  bool available() const { return files_.count("index.html") != 0; }
  std::size_t file_count() const { return files_.size(); }

  // The page for an HTML request at an API URL; `status` is 200, or 401
  // with a Basic challenge when the page asks for the browser's prompt.
  HttpResponse page(const HttpRequest& request, int status) const;
  // GET/HEAD /ui/<relative>: the file, 304 on a matching If-None-Match, or 404.
  HttpResponse asset(const HttpRequest& request, std::string_view relative) const;
  // Where an HTML request for "/" goes.
  HttpResponse redirect(const HttpRequest& request, const std::string& location) const;

 private:
  struct File {
    std::string body;
    std::string content_type;
    std::string etag;
  };
  HttpResponse file_response(const HttpRequest& request, const File& file, int status) const;

  std::map<std::string, File, std::less<>> files_;
};

}  // namespace paddock::server
