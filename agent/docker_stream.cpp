#include "agent/docker_stream.hpp"

#include "common/json_limits.hpp"

#include "agent/docker_client.hpp"
#include "agent/messages.hpp"
#include "common/version.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <cstring>

namespace paddock::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using error_code = boost::system::error_code;
using nlohmann::json;

namespace {

constexpr std::uint32_t kHeaderLimit = 64 * 1024;
constexpr std::size_t kMaxErrorBody = 64 * 1024;
constexpr std::size_t kMaxMessage = 512;
constexpr std::size_t kMaxJsonDepth = 128;
// Beast reads a body into what the buffer has room for (512 bytes when it
// has little), and Docker writes a log a line at a time: once a stream
// brings data it reads in pieces of this size, so a burst crosses the
// tunnel in large batches rather than a few lines each. (A stream that
// never brings any holds no such buffer.)
constexpr std::size_t kBodyReadSize = 64 * 1024;

Error transport(const std::string& what, const error_code& ec) {
  return Error{Errc::unavailable, what + ": " + ec.message()};
}

std::string versioned(const DockerTarget& docker, const std::string& path) {
  return docker.api_version.empty() ? path : "/v" + docker.api_version + path;
}

http::request<http::string_body> make_request(const DockerTarget& docker, const std::string& method,
                                              const std::string& path, const json& body) {
  http::request<http::string_body> req{http::string_to_verb(method), versioned(docker, path), 11};
  req.set(http::field::host, "docker");
  req.set(http::field::user_agent, std::string("paddock-agent/") + kVersion);
  if (!body.is_null()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  req.prepare_payload();
  return req;
}

asio::awaitable<Status> connect_and_send(DockerSocket& socket, const DockerTarget& docker,
                                         const http::request<http::string_body>& req) {
  auto [cec] = co_await socket.async_connect(asio::local::stream_protocol::endpoint(docker.socket_path),
                                             asio::as_tuple(asio::use_awaitable));
  if (cec) co_return transport("cannot connect to Docker at " + docker.socket_path, cec);
  auto [wec, n] = co_await http::async_write(socket, req, asio::as_tuple(asio::use_awaitable));
  (void)n;
  if (wec) co_return transport("sending to Docker", wec);
  co_return Ok{};
}

// Reads the rest of an error reply (after its header) into `reply`.
template <class Parser>
asio::awaitable<void> read_refusal(DockerSocket& socket, beast::flat_buffer& buffer, Parser&& header_parser,
                                   DockerReply* reply) {
  http::response_parser<http::string_body> parser(std::move(header_parser));
  parser.body_limit(kMaxErrorBody);
  if (reply) reply->status = parser.get().result_int();
  if (!parser.is_done()) {
    socket.expires_after(std::chrono::seconds(5));
    auto [ec, n] = co_await http::async_read(socket, buffer, parser, asio::as_tuple(asio::use_awaitable));
    (void)n;
    (void)ec;  // a short or cut body still says enough
  }
  if (reply) reply->body = parser.get().body().substr(0, kMaxErrorBody);
}

Error refusal_error(const DockerReply& reply) {
  return Error{reply.status == 404 ? Errc::not_found : reply.status == 409 ? Errc::conflict : Errc::unavailable,
               reply.message()};
}

}  // namespace

// -- FrameDemuxer --------------------------------------------------------

FrameDemuxer::State FrameDemuxer::next(std::string_view& input) {
  if (broken_) return State::malformed;
  if (ready_) return State::message;
  for (;;) {
    if (remaining_ == 0 && header_size_ < sizeof header_) {
      if (input.empty()) return State::need_more;
      const std::size_t n = std::min(sizeof header_ - header_size_, input.size());
      std::memcpy(header_ + header_size_, input.data(), n);
      header_size_ += n;
      input.remove_prefix(n);
      if (header_size_ < sizeof header_) return State::need_more;
      if (header_[0] > 3 || header_[1] != 0 || header_[2] != 0 || header_[3] != 0) {
        broken_ = true;
        return State::malformed;
      }
      stream_ = header_[0];
      remaining_ = (std::size_t{header_[4]} << 24) | (std::size_t{header_[5]} << 16) | (std::size_t{header_[6]} << 8) |
                   std::size_t{header_[7]};
      if (remaining_ == 0) {  // an empty frame says nothing
        header_size_ = 0;
        continue;
      }
    }
    const std::size_t n = std::min({remaining_, max_payload_ - pending_.size(), input.size()});
    pending_.append(input.data(), n);
    input.remove_prefix(n);
    remaining_ -= n;
    if (remaining_ == 0) {
      header_size_ = 0;
      ready_ = true;
      ready_frame_end_ = true;
      return State::message;
    }
    if (pending_.size() >= max_payload_) {
      ready_ = true;
      ready_frame_end_ = false;
      return State::message;
    }
    return State::need_more;
  }
}

FrameDemuxer::Message FrameDemuxer::take() {
  Message m;
  m.stream = stream_;
  m.payload = std::move(pending_);
  m.frame_end = ready_frame_end_;
  pending_.clear();
  ready_ = false;
  return m;
}

// -- plain requests --------------------------------------------------------

std::string DockerReply::message() const {
  std::string text;
  if (json_depth_within(body, kMaxJsonDepth)) {
    auto j = json::parse(body, nullptr, false);
    if (j.is_object()) {
      auto it = j.find("message");
      if (it != j.end() && it->is_string()) text = it->get<std::string>();
    }
  }
  if (text.empty()) text = body;
  text = clean_text(text, kMaxMessage);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  if (text.empty()) text = "Docker answered HTTP " + std::to_string(status);
  return text;
}

Result<json> DockerReply::json() const {
  if (!json_depth_within(body, kMaxJsonDepth)) return Error{Errc::invalid_input, "Docker's reply nests too deep"};
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return Error{Errc::invalid_input, "Docker's reply is not JSON"};
  return j;
}

asio::awaitable<Result<DockerReply>> docker_request(asio::any_io_executor executor, const DockerTarget& docker,
                                                    std::string method, std::string path, json body,
                                                    std::chrono::seconds timeout) {
  DockerSocket socket(executor);
  socket.expires_after(timeout);
  const auto req = make_request(docker, method, path, body);
  auto sent = co_await connect_and_send(socket, docker, req);
  if (!sent) co_return sent.error();
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(kMaxDockerReplyBody);
  auto [ec, n] = co_await http::async_read(socket, buffer, parser, asio::as_tuple(asio::use_awaitable));
  (void)n;
  if (ec) co_return transport(method + " " + path, ec);
  DockerReply reply;
  reply.status = parser.get().result_int();
  reply.body = std::move(parser.get().body());
  error_code ignored;
  socket.socket().shutdown(asio::socket_base::shutdown_both, ignored);
  co_return reply;
}

asio::awaitable<Result<std::string>> negotiate_docker_api(asio::any_io_executor executor, std::string socket_path) {
  DockerTarget unversioned{std::move(socket_path), ""};
  auto reply = co_await docker_request(executor, unversioned, "GET", "/version");
  if (!reply) co_return reply.error();
  if (reply->status != 200) co_return refusal_error(*reply);
  auto body = reply->json();
  if (!body || !body->is_object() || !body->contains("ApiVersion") || !(*body)["ApiVersion"].is_string()) {
    co_return Error{Errc::unavailable, "Docker's GET /version has no ApiVersion"};
  }
  std::string server = clean_text((*body)["ApiVersion"].get<std::string>(), 32);
  if (server.empty() || server.find_first_not_of("0123456789.") != std::string::npos) {
    co_return Error{Errc::unavailable, "Docker reports a malformed API version"};
  }
  if (compare_api_versions(server, kMinDockerApiVersion) < 0) {
    co_return Error{Errc::unavailable, "Docker's API version " + server + " is too old"};
  }
  co_return compare_api_versions(server, kMaxDockerApiVersion) < 0 ? server : std::string(kMaxDockerApiVersion);
}

// -- DockerBodyStream -------------------------------------------------------

DockerBodyStream::DockerBodyStream(asio::any_io_executor executor) : socket_(std::move(executor)) {
  parser_.header_limit(kHeaderLimit);
  parser_.body_limit(boost::none);  // logs and stats are endless
}

asio::awaitable<Status> DockerBodyStream::open(const DockerTarget& docker, std::string method, std::string path,
                                               DockerReply* refusal) {
  socket_.expires_after(kDockerRequestTimeout);
  const auto req = make_request(docker, method, path, nullptr);
  auto sent = co_await connect_and_send(socket_, docker, req);
  if (!sent) co_return closed_ ? Error{Errc::unavailable, "cancelled"} : sent.error();
  auto [ec, n] = co_await http::async_read_header(socket_, buffer_, parser_, asio::as_tuple(asio::use_awaitable));
  (void)n;
  if (ec) co_return closed_ ? Error{Errc::unavailable, "cancelled"} : transport(method + " " + path, ec);
  const unsigned status = parser_.get().result_int();
  if (status >= 300) {
    DockerReply reply;
    co_await read_refusal(socket_, buffer_, std::move(parser_), &reply);
    if (refusal) *refusal = reply;
    close();
    co_return refusal_error(reply);
  }
  socket_.expires_never();
  co_return Ok{};
}

asio::awaitable<Result<std::size_t>> DockerBodyStream::read_some(char* out, std::size_t size) {
  for (;;) {
    if (closed_) co_return Error{Errc::unavailable, "cancelled"};
    if (parser_.is_done()) co_return std::size_t{0};
    auto& body = parser_.get().body();
    body.data = out;
    body.size = size;
    body.more = true;
    auto [ec, n] = co_await http::async_read_some(socket_, buffer_, parser_, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec == http::error::need_buffer) ec = {};
    if (!ec) parse_buffered();
    const std::size_t got = size - parser_.get().body().size;
    if (got > 0 && buffer_.capacity() < kBodyReadSize) buffer_.reserve(kBodyReadSize);
    if (got > 0) co_return got;  // an error, if any, comes back on the next read
    if (closed_) co_return Error{Errc::unavailable, "cancelled"};
    if (ec) co_return transport("reading from Docker", ec);
  }
}

// Beast's read stops after one chunk, and Docker sends each log frame as a
// chunk of its own: parse the chunks already received into the caller's
// buffer too, without waiting for more (a followed log may be quiet now).
void DockerBodyStream::parse_buffered() {
  while (buffer_.size() > 0 && parser_.get().body().size > 0 && !parser_.is_done()) {
    error_code ec;
    const std::size_t used = parser_.put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec || used == 0) return;  // need_more, need_buffer, or an error for the next read
  }
}

void DockerBodyStream::close() {
  if (closed_) return;
  closed_ = true;
  socket_.close();
}

// -- DockerHijack -------------------------------------------------------------

DockerHijack::DockerHijack(asio::any_io_executor executor) : socket_(std::move(executor)) {}

asio::awaitable<Status> DockerHijack::start(const DockerTarget& docker, const std::string& exec_id, bool tty,
                                            DockerReply* refusal) {
  socket_.expires_after(kDockerRequestTimeout);
  auto req = make_request(docker, "POST", "/exec/" + url_encode(exec_id) + "/start",
                          json{{"Detach", false}, {"Tty", tty}});
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::upgrade, "tcp");
  auto sent = co_await connect_and_send(socket_, docker, req);
  if (!sent) co_return closed_ ? Error{Errc::unavailable, "cancelled"} : sent.error();
  http::response_parser<http::empty_body> parser;
  parser.header_limit(kHeaderLimit);
  auto [ec, n] = co_await http::async_read_header(socket_, leftover_, parser, asio::as_tuple(asio::use_awaitable));
  (void)n;
  if (ec) co_return closed_ ? Error{Errc::unavailable, "cancelled"} : transport("starting the exec", ec);
  const unsigned status = parser.get().result_int();
  // 101 with Upgrade; daemons before API 1.22-ish answer 200 and hijack all the same.
  if (status != 101 && status != 200) {
    DockerReply reply;
    co_await read_refusal(socket_, leftover_, std::move(parser), &reply);
    if (refusal) *refusal = reply;
    close();
    co_return refusal_error(reply);
  }
  // What follows the header in leftover_ is already the raw stream.
  socket_.expires_never();
  co_return Ok{};
}

asio::awaitable<Result<std::size_t>> DockerHijack::read_some(char* out, std::size_t size) {
  if (closed_) co_return Error{Errc::unavailable, "cancelled"};
  if (leftover_.size() > 0) {
    const std::size_t n = asio::buffer_copy(asio::buffer(out, size), leftover_.data());
    leftover_.consume(n);
    co_return n;
  }
  auto [ec, n] = co_await socket_.async_read_some(asio::buffer(out, size), asio::as_tuple(asio::use_awaitable));
  if (n > 0) co_return n;
  if (ec == asio::error::eof) co_return std::size_t{0};
  if (closed_) co_return Error{Errc::unavailable, "cancelled"};
  if (ec) co_return transport("reading from the exec", ec);
  co_return std::size_t{0};
}

asio::awaitable<Status> DockerHijack::write(std::string_view data) {
  if (closed_) co_return Error{Errc::unavailable, "cancelled"};
  auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(data.data(), data.size()),
                                            asio::as_tuple(asio::use_awaitable));
  (void)n;
  if (ec) co_return transport("writing to the exec", ec);
  co_return Ok{};
}

void DockerHijack::shutdown_send() {
  if (closed_) return;
  error_code ignored;
  socket_.socket().shutdown(asio::socket_base::shutdown_send, ignored);
}

void DockerHijack::close() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  socket_.socket().shutdown(asio::socket_base::shutdown_both, ignored);
  socket_.close();
}

}  // namespace paddock::agent
