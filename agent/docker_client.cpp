#include "agent/docker_client.hpp"

#include "common/json_limits.hpp"

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace paddock::agent {

namespace {

constexpr std::string_view kDefaultDockerHost = "unix:///var/run/docker.sock";
// sockaddr_un.sun_path holds 108 bytes with the terminating NUL.
constexpr std::size_t kMaxSocketPath = 107;
constexpr std::size_t kMaxRefLength = 128;
// nlohmann's DOM is fine with depth, but code that walks it (dump, copies)
// recurses; Docker's replies are shallow, so refuse anything silly.
constexpr std::size_t kMaxJsonDepth = 128;
// An error reply only needs to be big enough for its message.
constexpr std::size_t kMaxErrorBody = 64 * 1024;
constexpr std::size_t kMaxErrorMessage = 512;

void curl_global_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool is_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

Result<nlohmann::json> parse_untrusted_json(std::string_view text, const std::string& what) {
  if (!json_depth_within(text, kMaxJsonDepth)) {
    return Error{Errc::invalid_input,
                 what + " nests JSON deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
  }
  auto json = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Error{Errc::invalid_input, what + " is not valid JSON"};
  return json;
}

// Docker's text goes into our logs and API: keep it short and printable.
std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  return out;
}

Errc errc_for_status(long status) {
  switch (status) {
    case 400:
      return Errc::invalid_input;
    case 401:
      return Errc::unauthorized;
    case 403:
      return Errc::forbidden;
    case 404:
      return Errc::not_found;
    case 409:
      return Errc::conflict;
    default:
      return Errc::unavailable;
  }
}

Error http_error(long status, std::string_view body, const std::string& what) {
  std::string message;
  if (json_depth_within(body, kMaxJsonDepth)) {
    auto json = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
    if (json.is_object()) {
      auto it = json.find("message");
      if (it != json.end() && it->is_string()) message = it->get<std::string>();
    }
  }
  if (message.empty()) message = std::string(body.substr(0, kMaxErrorMessage));
  if (message.empty()) message = "no message";
  return Error{errc_for_status(status), "Docker refused " + what + ": " +
                                            printable(message, kMaxErrorMessage) + " (HTTP " +
                                            std::to_string(status) + ")"};
}

}  // namespace

// -- free functions -----------------------------------------------------

Result<DockerEndpoint> parse_docker_host(std::string_view docker_host) {
  if (docker_host.empty()) docker_host = kDefaultDockerHost;
  constexpr std::string_view scheme = "unix://";
  if (docker_host.substr(0, scheme.size()) != scheme) {
    return Error{Errc::invalid_input, "unsupported DOCKER_HOST '" + printable(docker_host, 200) +
                                          "': only unix:///path/to/docker.sock is supported"};
  }
  std::string path(docker_host.substr(scheme.size()));
  if (path.empty() || path.front() != '/') {
    return Error{Errc::invalid_input, "DOCKER_HOST '" + printable(docker_host, 200) +
                                          "' needs an absolute socket path (unix:///path)"};
  }
  if (path.size() > kMaxSocketPath) {
    return Error{Errc::invalid_input, "DOCKER_HOST socket path is longer than " +
                                          std::to_string(kMaxSocketPath) + " bytes"};
  }
  if (path.find('\0') != std::string::npos) {
    return Error{Errc::invalid_input, "DOCKER_HOST socket path contains a NUL byte"};
  }
  return DockerEndpoint{std::move(path)};
}

bool is_valid_container_ref(std::string_view ref) {
  if (ref.empty() || ref.size() > kMaxRefLength) return false;
  // An id (64 hex) or an id prefix is all hex, so the name rule covers both.
  if (!is_alnum(ref.front())) return false;
  return std::all_of(ref.begin() + 1, ref.end(),
                     [](char c) { return is_alnum(c) || c == '_' || c == '.' || c == '-'; });
}

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      auto u = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0x0f];
    }
  }
  return out;
}

int compare_api_versions(std::string_view a, std::string_view b) {
  auto next = [](std::string_view& v) -> unsigned long {
    auto dot = v.find('.');
    auto part = v.substr(0, dot);
    v = dot == std::string_view::npos ? std::string_view{} : v.substr(dot + 1);
    unsigned long n = 0;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), n);
    if (ec != std::errc{} || ptr != part.data() + part.size()) return 0;
    return n;
  };
  while (!a.empty() || !b.empty()) {
    auto x = next(a);
    auto y = next(b);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

Status EventLineSplitter::feed(std::string_view bytes,
                               const std::function<void(std::string_view)>& on_line) {
  while (!bytes.empty()) {
    auto nl = bytes.find('\n');
    auto chunk = bytes.substr(0, nl);
    if (partial_.size() + chunk.size() > max_line_bytes_) {
      partial_.clear();
      return Error{Errc::invalid_input, "Docker sent an event line longer than " +
                                            std::to_string(max_line_bytes_) + " bytes"};
    }
    if (nl == std::string_view::npos) {
      partial_.append(chunk);
      break;
    }
    std::string_view line = chunk;
    if (!partial_.empty()) {
      partial_.append(chunk);
      line = partial_;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) on_line(line);
    partial_.clear();
    bytes.remove_prefix(nl + 1);
  }
  return Ok{};
}

// -- one thread's transfers ---------------------------------------------

namespace {

// Runs one request at a time through a curl multi handle owned by one thread;
// any other thread may wake() it to notice a cancel flag at once.
class Transfer {
 public:
  // Gets the body in pieces with the HTTP status; false aborts the transfer.
  using Sink = std::function<bool(std::string_view data, long status)>;

  struct Outcome {
    CURLcode code = CURLE_OK;
    long status = 0;
    long os_errno = 0;
    bool cancelled = false;
    bool sink_refused = false;
    std::string error;
  };

  Transfer(const DockerEndpoint& endpoint, const DockerClientOptions& options,
           std::vector<const std::atomic<bool>*> cancel_flags)
      : socket_path_(endpoint.socket_path),
        connect_timeout_(options.connect_timeout),
        cancel_flags_(std::move(cancel_flags)),
        multi_(curl_multi_init()) {}
  ~Transfer() {
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
  }
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  bool cancelled() const {
    return std::any_of(cancel_flags_.begin(), cancel_flags_.end(),
                       [](const std::atomic<bool>* f) { return f->load(); });
  }

  // Thread-safe: interrupts the owner's wait so it checks the cancel flags.
  void wake() {
    if (multi_ != nullptr) curl_multi_wakeup(multi_);
  }

  // One request: method ("GET", "POST", "DELETE"), target ("/v1.41/info")
  // and a JSON body (POST only; empty: none). A zero timeout means none (the
  // event stream).
  Outcome perform(const std::string& method, const std::string& target, const std::string& body,
                  std::chrono::milliseconds timeout, const Sink& sink,
                  const std::function<void()>& on_headers = {}) {
    Outcome out;
    CURL* easy = multi_ != nullptr ? curl_easy_init() : nullptr;
    if (easy == nullptr) {
      out.code = CURLE_FAILED_INIT;
      out.error = "cannot initialise libcurl";
      return out;
    }
    Context ctx{this, &sink, &on_headers, easy, &out};
    char errbuf[CURL_ERROR_SIZE] = {};
    std::string url = "http://docker" + target;
    curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(easy, CURLOPT_PROXY, "");  // never an http_proxy from the environment
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "paddock-agent/" PADDOCK_VERSION);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout_.count()));
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &ctx);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, &ctx);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &Transfer::on_progress);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &ctx);
    curl_slist* headers = nullptr;
    if (method == "POST") {
      headers = curl_slist_append(headers, "Content-Type: application/json");
      curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.c_str());
    } else if (method != "GET") {
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
    }

    bool finished = false;
    if (curl_multi_add_handle(multi_, easy) != CURLM_OK) {
      out.code = CURLE_FAILED_INIT;
      out.error = "cannot start a libcurl transfer";
      finished = true;
    }
    while (!finished) {
      if (cancelled()) {
        out.cancelled = true;
        break;
      }
      int running = 0;
      CURLMcode mc = curl_multi_perform(multi_, &running);
      if (mc == CURLM_OK && running == 0) break;
      if (mc == CURLM_OK) mc = curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
      if (mc != CURLM_OK) {
        out.code = CURLE_FAILED_INIT;
        out.error = curl_multi_strerror(mc);
        finished = true;
      }
    }
    if (!out.cancelled && out.error.empty()) {
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) out.code = msg->data.result;
      }
    }
    if (out.code == CURLE_ABORTED_BY_CALLBACK) out.cancelled = true;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &out.status);
    curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &out.os_errno);
    if (out.error.empty()) out.error = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(out.code);
    curl_multi_remove_handle(multi_, easy);
    curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
    return out;
  }

 private:
  struct Context {
    Transfer* self;
    const Sink* sink;
    const std::function<void()>* on_headers;
    CURL* easy;
    Outcome* out;
  };

  static size_t on_write(char* data, size_t size, size_t count, void* user) {
    auto* ctx = static_cast<Context*>(user);
    long status = 0;
    curl_easy_getinfo(ctx->easy, CURLINFO_RESPONSE_CODE, &status);
    if (!(*ctx->sink)(std::string_view(data, size * count), status)) {
      ctx->out->sink_refused = true;
      return 0;  // CURLE_WRITE_ERROR
    }
    return size * count;
  }

  static size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto* ctx = static_cast<Context*>(user);
    std::string_view line(data, size * count);
    if ((line == "\r\n" || line == "\n") && *ctx->on_headers) {
      long status = 0;
      curl_easy_getinfo(ctx->easy, CURLINFO_RESPONSE_CODE, &status);
      if (status >= 200 && status < 300) (*ctx->on_headers)();
    }
    return size * count;
  }

  static int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    // Also checked between polls; this covers long stretches inside libcurl.
    return static_cast<Context*>(user)->self->cancelled() ? 1 : 0;
  }

  std::string socket_path_;
  std::chrono::milliseconds connect_timeout_;
  std::vector<const std::atomic<bool>*> cancel_flags_;
  CURLM* multi_;
};

}  // namespace

// -- the client -----------------------------------------------------------

namespace {
// What a call's answer must be.
enum class Reply { object, array, object_or_none };
}  // namespace

struct DockerClient::Impl {
  struct Job {
    std::string method;
    std::string path;  // without the /v<version> prefix
    std::string body;  // JSON for a POST; empty: none
    Reply reply = Reply::object;
    JsonHandler done;
    boost::asio::any_io_executor work;  // tracks outstanding work until posted
  };

  Impl(boost::asio::any_io_executor ex, DockerEndpoint ep, DockerClientOptions opts)
      : executor(std::move(ex)), endpoint(std::move(ep)), options(opts) {}

  boost::asio::any_io_executor executor;
  DockerEndpoint endpoint;
  DockerClientOptions options;

  mutable std::mutex api_mutex;  // guards api_version
  std::string api_version;
  std::mutex negotiate_mutex;  // one GET /version at a time

  std::mutex queue_mutex;  // guards queue and stopping
  std::condition_variable queue_cv;
  std::deque<Job> queue;
  bool stopping = false;
  std::atomic<bool> stop_flag{false};
  std::vector<std::unique_ptr<Transfer>> worker_transfers;
  std::vector<std::thread> workers;

  std::mutex events_mutex;  // guards the members below
  std::unique_ptr<Transfer> events_transfer;
  std::thread events_thread;
  std::shared_ptr<std::atomic<bool>> events_running;
  std::atomic<bool> events_stop{false};

  boost::asio::any_io_executor tracked() const {
    return boost::asio::prefer(executor, boost::asio::execution::outstanding_work.tracked);
  }

  static void post_result(const boost::asio::any_io_executor& ex, JsonHandler done,
                          Result<nlohmann::json> result) {
    boost::asio::post(ex, [done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  }

  std::string describe(const std::string& what) const {
    return what + " on " + endpoint.socket_path;
  }

  // Turns a failed transfer into the project's error.
  Error transfer_error(const Transfer::Outcome& out, const std::string& what) {
    if (out.cancelled || stop_flag.load()) {
      return Error{Errc::unavailable, "Docker client stopped during " + what};
    }
    switch (out.code) {
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST: {
        forget_api_version();
        std::string why =
            out.os_errno != 0 ? std::strerror(static_cast<int>(out.os_errno)) : out.error;
        return Error{Errc::unavailable,
                     "cannot reach Docker at " + endpoint.socket_path + ": " + why};
      }
      case CURLE_OPERATION_TIMEDOUT:
        return Error{Errc::unavailable, "Docker at " + endpoint.socket_path + " did not answer " +
                                            what + " in time: " + out.error};
      default:
        forget_api_version();
        return Error{Errc::unavailable, "lost Docker at " + endpoint.socket_path + " during " +
                                            what + ": " + printable(out.error, 300)};
    }
  }

  void forget_api_version() {
    // Docker may come back as another version: negotiate again.
    std::lock_guard lock(api_mutex);
    api_version.clear();
  }

  // A bounded request whose answer is JSON, or nothing (null) for a 204 or
  // a 304 ("already started", "already stopped").
  Result<nlohmann::json> call(Transfer& transfer, const std::string& method, const std::string& target,
                              const std::string& request_body, const std::string& what) {
    std::string body;
    bool too_large = false;
    std::size_t limit = options.max_body_bytes;
    auto sink = [&](std::string_view data, long status) {
      std::size_t cap = (status >= 200 && status < 300) ? limit : kMaxErrorBody;
      if (body.size() + data.size() > cap) {
        if (status >= 200 && status < 300) {
          too_large = true;
          return false;
        }
        body.append(data.substr(0, cap - body.size()));  // enough for the message
        return true;
      }
      body.append(data);
      return true;
    };
    auto out = transfer.perform(method, target, request_body, options.request_timeout, sink);
    if (too_large) {
      return Error{Errc::invalid_input,
                   "Docker's reply to " + what + " exceeds " + std::to_string(limit) + " bytes"};
    }
    if (out.code != CURLE_OK || out.cancelled) return transfer_error(out, what);
    if (out.status == 304) return nlohmann::json();
    if (out.status < 200 || out.status >= 300) return http_error(out.status, body, what);
    if (body.empty() && out.status == 204) return nlohmann::json();
    return parse_untrusted_json(body, "Docker's reply to " + what);
  }

  Result<std::string> negotiate(Transfer& transfer) {
    {
      std::lock_guard lock(api_mutex);
      if (!api_version.empty()) return api_version;
    }
    std::lock_guard negotiating(negotiate_mutex);
    {
      std::lock_guard lock(api_mutex);
      if (!api_version.empty()) return api_version;  // another worker just did
    }
    auto reply = call(transfer, "GET", "/version", {}, "GET /version");
    if (!reply) return reply.error();
    const auto& v = *reply;
    auto server = v.is_object() ? v.find("ApiVersion") : v.end();
    if (!v.is_object() || server == v.end() || !server->is_string()) {
      return Error{Errc::invalid_input, "Docker's GET /version has no ApiVersion"};
    }
    std::string server_version = printable(server->get<std::string>(), 32);
    if (compare_api_versions(server_version, kMinDockerApiVersion) < 0) {
      return Error{Errc::unavailable, "Docker at " + endpoint.socket_path + " speaks API " +
                                          server_version + "; paddock needs at least " +
                                          std::string(kMinDockerApiVersion)};
    }
    std::string chosen = compare_api_versions(server_version, kMaxDockerApiVersion) < 0
                             ? server_version
                             : std::string(kMaxDockerApiVersion);
    auto min = v.find("MinAPIVersion");
    if (min != v.end() && min->is_string() &&
        compare_api_versions(min->get<std::string>(), chosen) > 0) {
      return Error{Errc::unavailable, "Docker at " + endpoint.socket_path + " requires API " +
                                          printable(min->get<std::string>(), 32) +
                                          " or later; paddock speaks up to " + chosen};
    }
    // Only digits and dots go into paths.
    if (chosen.find_first_not_of("0123456789.") != std::string::npos) {
      return Error{Errc::invalid_input, "Docker reports a malformed API version"};
    }
    std::lock_guard lock(api_mutex);
    api_version = chosen;
    return chosen;
  }

  void worker_loop(std::size_t index) {
    Transfer& transfer = *worker_transfers[index];
    for (;;) {
      Job job;
      {
        std::unique_lock lock(queue_mutex);
        queue_cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) return;  // stop() fails what is left
        job = std::move(queue.front());
        queue.pop_front();
      }
      std::string what = job.method + " " + job.path.substr(0, job.path.find('?'));
      Result<nlohmann::json> result = Error{Errc::internal, "unset"};
      auto version = negotiate(transfer);
      if (!version) {
        result = version.error();
      } else {
        result = call(transfer, job.method, "/v" + *version + job.path, job.body, what);
        const bool shape_ok = !result || (job.reply == Reply::array && result->is_array()) ||
                              (job.reply == Reply::object && result->is_object()) ||
                              (job.reply == Reply::object_or_none && (result->is_object() || result->is_null()));
        if (!shape_ok) {
          result = Error{Errc::invalid_input, "Docker's reply to " + what + " is not a JSON " +
                                                  (job.reply == Reply::array ? "array" : "object")};
        }
      }
      post_result(job.work, std::move(job.done), std::move(result));
    }
  }

  void submit(std::string path, Reply reply, JsonHandler done) {
    submit("GET", std::move(path), {}, reply, std::move(done));
  }

  void submit(std::string method, std::string path, std::string body, Reply reply, JsonHandler done) {
    auto work = tracked();
    {
      std::lock_guard lock(queue_mutex);
      if (!stopping && queue.size() < options.max_queued_calls) {
        queue.push_back(Job{std::move(method), std::move(path), std::move(body), reply, std::move(done),
                            std::move(work)});
        queue_cv.notify_one();
        return;
      }
    }
    auto error = stop_flag.load()
                     ? Error{Errc::unavailable, "Docker client stopped"}
                     : Error{Errc::unavailable, "too many Docker calls queued (" +
                                                    std::to_string(options.max_queued_calls) + ")"};
    post_result(work, std::move(done), std::move(error));
  }

  void events_loop(Transfer& transfer, std::string query, std::shared_ptr<EventHandler> on_event,
                   EndHandler on_end, std::function<void()> on_connected,
                   std::shared_ptr<std::atomic<bool>> running) {
    auto work = tracked();
    auto end = [&](Status status) {
      boost::asio::post(work, [on_end = std::move(on_end), status = std::move(status)]() mutable {
        on_end(std::move(status));
      });
      running->store(false);
    };

    auto version = negotiate(transfer);
    if (!version) {
      if (events_stop.load() || stop_flag.load()) return end(Ok{});
      return end(version.error());
    }
    std::string what = "GET /events";
    auto pending = std::make_shared<std::atomic<std::size_t>>(0);
    EventLineSplitter splitter(options.max_event_line_bytes);
    std::optional<Error> failure;
    std::string error_body;
    auto sink = [&](std::string_view data, long status) {
      if (status < 200 || status >= 300) {
        error_body.append(
            data.substr(0, kMaxErrorBody - std::min(kMaxErrorBody, error_body.size())));
        return true;
      }
      auto fed = splitter.feed(data, [&](std::string_view line) {
        if (failure) return;
        auto event = parse_untrusted_json(line, "a Docker event");
        if (!event) {
          failure = event.error();
          return;
        }
        if (!event->is_object()) {
          failure = Error{Errc::invalid_input, "a Docker event is not a JSON object"};
          return;
        }
        if (pending->fetch_add(1) >= options.max_pending_events) {
          failure = Error{Errc::unavailable, "Docker events arrive faster than they are handled (" +
                                                 std::to_string(options.max_pending_events) +
                                                 " pending)"};
          return;
        }
        boost::asio::post(work, [on_event, pending, ev = std::move(*event)]() mutable {
          pending->fetch_sub(1);
          (*on_event)(std::move(ev));
        });
      });
      if (!fed) failure = fed.error();
      return !failure;
    };
    std::function<void()> connected;
    if (on_connected) {
      connected = [&] { boost::asio::post(work, on_connected); };
    }

    auto out = transfer.perform("GET", "/v" + *version + "/events" + query, {}, std::chrono::milliseconds{0},
                                sink, connected);
    if (events_stop.load() || stop_flag.load()) return end(Ok{});
    if (failure) return end(*failure);
    if (out.code != CURLE_OK) return end(transfer_error(out, what));
    if (out.status < 200 || out.status >= 300) return end(http_error(out.status, error_body, what));
    end(Error{Errc::unavailable, "Docker at " + endpoint.socket_path + " ended the event stream"});
  }

  void stop_events() {
    std::lock_guard lock(events_mutex);
    if (!events_thread.joinable()) return;
    events_stop.store(true);
    events_transfer->wake();
    events_thread.join();
    events_transfer.reset();
    events_running.reset();
    events_stop.store(false);
  }
};

Result<std::unique_ptr<DockerClient>> DockerClient::create(boost::asio::any_io_executor executor,
                                                           std::string_view docker_host,
                                                           DockerClientOptions options) {
  auto endpoint = parse_docker_host(docker_host);
  if (!endpoint) return endpoint.error();
  return std::make_unique<DockerClient>(std::move(executor), std::move(*endpoint), options);
}

DockerClient::DockerClient(boost::asio::any_io_executor executor, DockerEndpoint endpoint,
                           DockerClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(endpoint), options)) {
  curl_global_once();
  auto& im = *impl_;
  im.options.worker_threads = std::max<std::size_t>(1, im.options.worker_threads);
  for (std::size_t i = 0; i < im.options.worker_threads; ++i) {
    im.worker_transfers.push_back(std::make_unique<Transfer>(
        im.endpoint, im.options, std::vector{&std::as_const(im.stop_flag)}));
  }
  for (std::size_t i = 0; i < im.options.worker_threads; ++i) {
    im.workers.emplace_back([&im, i] { im.worker_loop(i); });
  }
}

DockerClient::~DockerClient() { stop(); }

const DockerEndpoint& DockerClient::endpoint() const noexcept { return impl_->endpoint; }

std::string DockerClient::api_version() const {
  std::lock_guard lock(impl_->api_mutex);
  return impl_->api_version;
}

void DockerClient::version(JsonHandler done) { impl_->submit("/version", Reply::object, std::move(done)); }
void DockerClient::info(JsonHandler done) { impl_->submit("/info", Reply::object, std::move(done)); }
void DockerClient::list_containers(JsonHandler done) {
  impl_->submit("/containers/json?all=1", Reply::array, std::move(done));
}
void DockerClient::list_images(JsonHandler done) {
  impl_->submit("/images/json", Reply::array, std::move(done));
}

bool DockerClient::refuse_bad_ref(const std::string& ref, JsonHandler& done) {
  if (is_valid_container_ref(ref)) return false;
  Impl::post_result(impl_->tracked(), std::move(done),
                    Error{Errc::invalid_input, "not a container id or name: '" + printable(ref, kMaxRefLength) + "'"});
  return true;
}

void DockerClient::inspect_container(std::string ref, JsonHandler done) {
  if (refuse_bad_ref(ref, done)) return;
  impl_->submit("/containers/" + url_encode(ref) + "/json", Reply::object, std::move(done));
}

void DockerClient::create_container(std::string name, const nlohmann::json& spec, JsonHandler done) {
  if (refuse_bad_ref(name, done)) return;
  impl_->submit("POST", "/containers/create?name=" + url_encode(name), spec.dump(), Reply::object, std::move(done));
}

void DockerClient::start_container(std::string ref, JsonHandler done) {
  if (refuse_bad_ref(ref, done)) return;
  impl_->submit("POST", "/containers/" + url_encode(ref) + "/start", {}, Reply::object_or_none, std::move(done));
}

void DockerClient::stop_container(std::string ref, std::chrono::seconds grace, JsonHandler done) {
  if (refuse_bad_ref(ref, done)) return;
  impl_->submit("POST", "/containers/" + url_encode(ref) + "/stop?t=" + std::to_string(grace.count()), {},
                Reply::object_or_none, std::move(done));
}

void DockerClient::rename_container(std::string ref, std::string new_name, JsonHandler done) {
  if (refuse_bad_ref(ref, done) || refuse_bad_ref(new_name, done)) return;
  impl_->submit("POST", "/containers/" + url_encode(ref) + "/rename?name=" + url_encode(new_name), {},
                Reply::object_or_none, std::move(done));
}

void DockerClient::set_restart_policy(std::string ref, std::string policy, JsonHandler done) {
  if (refuse_bad_ref(ref, done)) return;
  const nlohmann::json body = {{"RestartPolicy", {{"Name", std::move(policy)}}}};
  impl_->submit("POST", "/containers/" + url_encode(ref) + "/update", body.dump(), Reply::object_or_none,
                std::move(done));
}

void DockerClient::remove_container(std::string ref, JsonHandler done) {
  if (refuse_bad_ref(ref, done)) return;
  impl_->submit("DELETE", "/containers/" + url_encode(ref) + "?force=1", {}, Reply::object_or_none,
                std::move(done));
}

void DockerClient::events(EventHandler on_event, EndHandler on_end, DockerEventsOptions options) {
  auto& im = *impl_;
  auto fail = [&](Error error) {
    boost::asio::post(im.tracked(),
                      [on_end = std::move(on_end), error = std::move(error)]() mutable {
                        on_end(std::move(error));
                      });
  };
  std::string query = "?";
  if (!options.filters.is_null()) {
    if (!options.filters.is_object()) {
      return fail(Error{Errc::invalid_input, "event filters must be a JSON object"});
    }
    query += "filters=" + url_encode(options.filters.dump()) + "&";
  }
  if (options.since) query += "since=" + std::to_string(*options.since) + "&";
  query.pop_back();

  std::lock_guard lock(im.events_mutex);
  if (im.stop_flag.load()) return fail(Error{Errc::unavailable, "Docker client stopped"});
  if (im.events_thread.joinable()) {
    if (im.events_running && im.events_running->load()) {
      return fail(Error{Errc::conflict, "a Docker event stream is already running"});
    }
    im.events_thread.join();  // finished: it only had to return
  }
  im.events_running = std::make_shared<std::atomic<bool>>(true);
  im.events_transfer = std::make_unique<Transfer>(
      im.endpoint, im.options,
      std::vector{&std::as_const(im.stop_flag), &std::as_const(im.events_stop)});
  im.events_thread = std::thread(
      [&im, transfer = im.events_transfer.get(), query = std::move(query),
       on_event = std::make_shared<EventHandler>(std::move(on_event)), on_end = std::move(on_end),
       on_connected = std::move(options.on_connected), running = im.events_running]() mutable {
        im.events_loop(*transfer, std::move(query), std::move(on_event), std::move(on_end),
                       std::move(on_connected), std::move(running));
      });
}

void DockerClient::stop_events() { impl_->stop_events(); }

void DockerClient::stop() {
  auto& im = *impl_;
  std::deque<Impl::Job> left;
  {
    std::lock_guard lock(im.queue_mutex);
    if (!im.stopping) {
      im.stopping = true;
      left.swap(im.queue);
    }
  }
  im.queue_cv.notify_all();
  im.stop_flag.store(true);
  for (auto& t : im.worker_transfers) t->wake();
  for (auto& w : im.workers) {
    if (w.joinable()) w.join();
  }
  for (auto& job : left) {
    Impl::post_result(job.work, std::move(job.done),
                      Error{Errc::unavailable, "Docker client stopped"});
  }
  im.stop_events();
}

}  // namespace paddock::agent
