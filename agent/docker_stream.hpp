#pragma once
// Docker's streaming endpoints (logs, stats, exec) spoken directly over the
// unix socket with Asio and Beast, so the stream tunnels read from Docker
// only as fast as the user takes the data: every read is awaited inside the
// event loop, and exec gets the hijacked raw connection it needs.
//
// (agent/docker_client.hpp, on libcurl, serves the control connection's
// request/response calls; it has no way to pause a transfer per message.)
//
// Everything Docker sends is untrusted: headers and error bodies are
// bounded, the multiplexed stream is checked frame by frame.
//
// Objects here are used from one coroutine chain on one executor (a stream
// tunnel's strand); none is thread-safe.

#include "common/result.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace paddock::agent {

// One message on a stream tunnel holds at most this much payload: with the
// channel byte it fits the server's 1 MiB message limit.
inline constexpr std::size_t kMaxStreamPayload = std::size_t{1024} * 1024 - 1;

// Splits Docker's multiplexed stream (no TTY) into messages. Each frame has
// an 8-byte header: the stream type (0 stdin, 1 stdout, 2 stderr, 3 Docker's
// own error), three zero bytes and the payload length (big-endian uint32).
// A frame becomes one message, or several of at most `max_payload` bytes;
// empty frames are skipped. Headers and payloads may be split across feeds
// anywhere. Holds at most max_payload + 8 bytes.
class FrameDemuxer {
 public:
  struct Message {
    std::uint8_t stream = 1;  // Docker's stream type: 0, 1, 2 or 3
    std::string payload;
    bool frame_end = true;  // the last (or only) piece of its frame
  };
  enum class State { need_more, message, malformed };

  explicit FrameDemuxer(std::size_t max_payload = kMaxStreamPayload) : max_payload_(max_payload) {}

  // Consumes bytes from the front of `input` until a message is complete
  // (returns message; take() it) or `input` is empty (need_more). A header
  // with an unknown stream type or non-zero padding is malformed: the stream
  // is not a multiplexed one, and the demuxer must not be fed again.
  State next(std::string_view& input);
  Message take();

  // True between frames: nothing of a frame is pending.
  bool at_boundary() const noexcept { return header_size_ == 0 && remaining_ == 0 && pending_.empty(); }

 private:
  std::size_t max_payload_;
  unsigned char header_[8] = {};
  std::size_t header_size_ = 0;
  std::uint8_t stream_ = 1;
  std::size_t remaining_ = 0;  // of the current frame's payload, not yet consumed
  std::string pending_;        // consumed payload not yet taken
  bool ready_ = false;
  bool ready_frame_end_ = false;
  bool broken_ = false;
};

// One connection to Docker's unix socket, speaking HTTP/1.1 with Beast.
using DockerSocket = boost::beast::basic_stream<boost::asio::local::stream_protocol, boost::asio::any_io_executor,
                                                boost::beast::unlimited_rate_policy>;

struct DockerReply {
  unsigned status = 0;
  std::string body;
  // Docker's {"message": …} of an error reply, cleaned, or the status text.
  std::string message() const;
  Result<nlohmann::json> json() const;  // the body parsed (depth-limited)
};

// Where and how to reach Docker: the socket and the Engine API version
// ("1.41") put in front of every path.
struct DockerTarget {
  std::string socket_path;
  std::string api_version;
};

// Bounds of a plain request.
inline constexpr std::size_t kMaxDockerReplyBody = std::size_t{32} << 20;
inline constexpr std::chrono::seconds kDockerRequestTimeout{30};

// One request on a fresh connection: `path` without the version prefix,
// a JSON body when `body` is not null. The reply's body is bounded by
// kMaxDockerReplyBody; the whole exchange by `timeout`. A transport failure
// is Errc::unavailable.
boost::asio::awaitable<Result<DockerReply>> docker_request(boost::asio::any_io_executor executor,
                                                           const DockerTarget& docker, std::string method,
                                                           std::string path, nlohmann::json body = nullptr,
                                                           std::chrono::seconds timeout = kDockerRequestTimeout);

// GET /version and the version to use: min(Docker's ApiVersion,
// kMaxDockerApiVersion); Errc::unavailable below kMinDockerApiVersion.
boost::asio::awaitable<Result<std::string>> negotiate_docker_api(boost::asio::any_io_executor executor,
                                                                 std::string socket_path);

// A response read piece by piece as Docker writes it (logs, stats): chunked,
// sized or until EOF. The header arrives within kDockerRequestTimeout; the
// body has no deadline (a followed log may be quiet for days).
class DockerBodyStream {
 public:
  explicit DockerBodyStream(boost::asio::any_io_executor executor);

  // Connects, sends the request and reads the header. A status of 300 or
  // more fails, with the reply (and its bounded body) in `refusal`.
  // close() cancels it at any point.
  boost::asio::awaitable<Status> open(const DockerTarget& docker, std::string method, std::string path,
                                      DockerReply* refusal);

  // Reads some body bytes into `out`: the count, or 0 at the end of the
  // body. After close(), Errc::unavailable.
  boost::asio::awaitable<Result<std::size_t>> read_some(char* out, std::size_t size);

  // Cancels whatever is pending and closes the connection.
  void close();

 private:
  void parse_buffered();
  DockerSocket socket_;
  boost::beast::flat_buffer buffer_;
  boost::beast::http::response_parser<boost::beast::http::buffer_body> parser_;
  bool closed_ = false;
};

// The raw connection of a started exec (POST /exec/{id}/start with
// Connection: Upgrade): the process's output to read, its stdin to write.
class DockerHijack {
 public:
  explicit DockerHijack(boost::asio::any_io_executor executor);

  // Starts exec `exec_id` and hijacks the connection; a refusal as with
  // DockerBodyStream::open. close() cancels it at any point.
  boost::asio::awaitable<Status> start(const DockerTarget& docker, const std::string& exec_id, bool tty,
                                       DockerReply* refusal);

  // Some output bytes (0 at EOF: the process's streams ended).
  boost::asio::awaitable<Result<std::size_t>> read_some(char* out, std::size_t size);
  // Writes all of `data` (stdin); completes once the kernel took it.
  boost::asio::awaitable<Status> write(std::string_view data);
  // End of stdin: shuts the sending side down; output keeps coming.
  void shutdown_send();
  // Cancels everything pending and closes the connection.
  void close();
  bool is_open() const noexcept { return !closed_; }

 private:
  DockerSocket socket_;
  boost::beast::flat_buffer leftover_;  // the header, then raw bytes read along with it
  bool closed_ = false;
};

}  // namespace paddock::agent
