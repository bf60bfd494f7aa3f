#pragma once
// A small HTTP/1.1 client over Beast for the agent and the CLI: http and
// https URLs, DNS names and IP literals ("[::1]"), the project's TLS trust
// modes (system store, a pinned CA, or none for the one checksum-compared
// fetch of ca.pem), one deadline per request and a limit on the body.
//
// Failures are one line meant for a person: "cannot connect to
// https://h:8443: connection refused", "cannot connect to https://h:8443:
// TLS: certificate verify failed (self-signed certificate)". A certificate
// that fails verification is Errc::forbidden, other transport failures
// Errc::unavailable. An HTTP error status is not a failure: the caller gets
// the Response and decides.

#include "common/result.hpp"
#include "common/tls.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paddock::http_client {

// An absolute http(s) or ws(s) URL, split for connecting.
struct Url {
  std::string scheme;   // "http", "https", "ws" or "wss" (lowercase)
  std::string host;     // DNS name (lowercase) or IP literal, never in brackets
  bool ipv6 = false;    // host is an IPv6 literal
  std::uint16_t port = 0;
  std::string target;   // path and query, at least "/"

  bool tls() const { return scheme == "https" || scheme == "wss"; }
  // host[:port] as in a Host header: IPv6 in brackets, default port omitted.
  std::string authority() const;
  // scheme://authority: what "the same server" is compared by.
  std::string origin() const;
};

// Parses an absolute URL; user info, fragments and non-numeric ports are
// refused (Errc::invalid_input, one line naming the URL).
Result<Url> parse_url(std::string_view text);

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Response {
  unsigned status = 0;
  Headers headers;
  std::string body;

  // The first header of that name (case-insensitive), if any.
  std::optional<std::string> header(std::string_view name) const;
};

// The "code" and "message" of the API's JSON error body; empty strings when
// the body is not such an object.
struct ApiErrorBody {
  std::string code;
  std::string message;
};
ApiErrorBody parse_error_body(std::string_view body);

inline constexpr std::size_t kDefaultBodyLimit = std::size_t{16} << 20;
inline constexpr std::chrono::milliseconds kDefaultTimeout{30000};

struct RequestOptions {
  std::chrono::milliseconds timeout = kDefaultTimeout;  // the whole exchange
  std::size_t body_limit = kDefaultBodyLimit;            // of the response body
};

// Sends one request on a fresh connection and reads the whole response.
// Synchronous: runs its own io_context on the calling thread. Thread-safe.
Result<Response> request(std::string_view method, std::string_view url, const Headers& headers,
                         std::string_view body, const tls::ClientTrust& trust,
                         RequestOptions options = {});

// The same as a coroutine on the caller's executor.
boost::asio::awaitable<Result<Response>> async_request(std::string method, std::string url,
                                                       Headers headers, std::string body,
                                                       tls::ClientTrust trust,
                                                       RequestOptions options = {});

// Building blocks shared with ws_client ----------------------------------

// Resolves url's host and connects a socket on `executor` (TCP_NODELAY set)
// before `deadline`. Errors are "cannot connect to <origin>: <reason>".
boost::asio::awaitable<Result<boost::beast::tcp_stream>> connect_tcp(
    boost::asio::any_io_executor executor, const Url& url, std::chrono::steady_clock::time_point deadline);

// The category of a failed TLS handshake: Errc::forbidden when the server's
// certificate failed verification (trusting it needs a person), else
// Errc::unavailable.
Errc tls_failure_code(SSL* ssl);

// One line for a transport failure, e.g. "connection refused", "timed out",
// "TLS: certificate verify failed (hostname mismatch)". `ssl` (may be null)
// lets a TLS failure name the verification error.
std::string describe_error(const boost::system::error_code& ec, SSL* ssl = nullptr);

}  // namespace paddock::http_client
