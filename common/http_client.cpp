#include "common/http_client.hpp"

#include "common/version.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <nlohmann/json.hpp>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <exception>

namespace paddock::http_client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Error text from Asio starts with a capital; ours reads as part of a sentence.
std::string sentence_case(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

std::string printable(std::string_view text, std::size_t max = 200) {
  std::string out;
  for (char c : text.substr(0, max)) {
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  if (text.size() > max) out += "...";
  return out;
}

using SslStream = beast::ssl_stream<beast::tcp_stream>;

asio::awaitable<Result<Response>> exchange_on(auto& stream, const Url& url, http::verb verb,
                                              const Headers& headers, const std::string& body,
                                              std::size_t body_limit) {
  http::request<http::string_body> req{verb, url.target, 11};
  req.set(http::field::host, url.authority());
  req.set(http::field::user_agent, std::string("paddock/") + kVersion);
  req.set(http::field::connection, "close");
  for (const auto& [name, value] : headers) req.set(name, value);
  if (!body.empty() || verb == http::verb::post || verb == http::verb::put) {
    req.body() = body;
    req.prepare_payload();
  }
  auto [wec, written] = co_await http::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
  (void)written;
  if (wec) co_return fail(Errc::unavailable, "cannot send to " + url.origin() + ": " + describe_error(wec));

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  parser.header_limit(64 * 1024);
  auto [rec, read] = co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
  (void)read;
  if (rec == http::error::body_limit) {
    co_return fail(Errc::invalid_input, url.origin() + " sent a response body over " +
                                            std::to_string(body_limit) + " bytes");
  }
  if (rec) {
    co_return fail(Errc::unavailable, "no answer from " + url.origin() + ": " + describe_error(rec));
  }
  auto res = parser.release();
  Response out;
  out.status = res.result_int();
  for (const auto& field : res) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.body = std::move(res.body());
  co_return out;
}

asio::awaitable<Result<Response>> do_request(std::string method, std::string url_text, Headers headers,
                                             std::string body, tls::ClientTrust trust,
                                             RequestOptions options) {
  const auto deadline = Clock::now() + options.timeout;
  auto url = parse_url(url_text);
  if (!url) co_return url.error();
  if (url->scheme != "http" && url->scheme != "https") {
    co_return fail(Errc::invalid_input, "not an http(s) URL: " + printable(url_text));
  }
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) co_return fail(Errc::invalid_input, "unknown HTTP method " + printable(method));

  std::shared_ptr<asio::ssl::context> context;
  if (url->tls()) {
    auto made = tls::make_client_context(trust);
    if (!made) co_return made.error();
    context = std::move(*made);
  }

  auto tcp_stream = co_await connect_tcp(co_await asio::this_coro::executor, *url, deadline);
  if (!tcp_stream) co_return tcp_stream.error();
  if (!url->tls()) {
    beast::tcp_stream stream = std::move(*tcp_stream);
    stream.expires_at(deadline);
    auto out = co_await exchange_on(stream, *url, verb, headers, body, options.body_limit);
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return out;
  }

  SslStream stream(std::move(*tcp_stream), *context);
  if (auto st = tls::prepare_client_stream(stream, url->host); !st) co_return st.error();
  beast::get_lowest_layer(stream).expires_at(deadline);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, asio::as_tuple(asio::use_awaitable));
  if (hec) {
    co_return fail(tls_failure_code(stream.native_handle()),
                   "cannot connect to " + url->origin() + ": " + describe_error(hec, stream.native_handle()));
  }
  auto out = co_await exchange_on(stream, *url, verb, headers, body, options.body_limit);
  // A polite close_notify, but never waiting long for the peer's.
  beast::get_lowest_layer(stream).expires_at(std::min(deadline, Clock::now() + std::chrono::seconds(1)));
  auto [sec] = co_await stream.async_shutdown(asio::as_tuple(asio::use_awaitable));
  (void)sec;
  co_return out;
}

}  // namespace

Errc tls_failure_code(SSL* ssl) {
  return ssl != nullptr && SSL_get_verify_result(ssl) != X509_V_OK ? Errc::forbidden : Errc::unavailable;
}

std::string Url::authority() const {
  std::string out = ipv6 ? "[" + host + "]" : host;
  const bool default_port = (tls() && port == 443) || (!tls() && port == 80);
  if (!default_port) out += ":" + std::to_string(port);
  return out;
}

std::string Url::origin() const { return scheme + "://" + authority(); }

Result<Url> parse_url(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return fail(Errc::invalid_input, "'" + printable(text) + "' is not a usable URL: " + std::string(why));
  };
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) return bad("expected scheme://host[:port]/path");
  const auto& u = *parsed;
  Url url;
  url.scheme = lower(u.scheme());
  if (url.scheme != "http" && url.scheme != "https" && url.scheme != "ws" && url.scheme != "wss") {
    return bad("the scheme must be http or https");
  }
  if (u.has_userinfo()) return bad("user info is not allowed");
  if (u.has_fragment()) return bad("a fragment is not allowed");
  switch (u.host_type()) {
    case boost::urls::host_type::name:
      url.host = lower(u.host_address());
      break;
    case boost::urls::host_type::ipv4:
      url.host = u.host_address();
      break;
    case boost::urls::host_type::ipv6:
      url.host = u.host_address();
      url.ipv6 = true;
      break;
    default:
      return bad("the host must be a name or an IP address");
  }
  if (url.host.empty()) return bad("the host is missing");
  if (u.has_port()) {
    if (u.port().empty()) return bad("the port is empty");
    const auto n = u.port_number();
    if (n == 0) return bad("the port must be 1-65535");
    url.port = n;
  } else {
    url.port = url.tls() ? 443 : 80;
  }
  url.target = std::string(u.encoded_path());
  if (url.target.empty()) url.target = "/";
  if (u.has_query()) url.target += "?" + std::string(u.encoded_query());
  return url;
}

std::optional<std::string> Response::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return std::nullopt;
}

ApiErrorBody parse_error_body(std::string_view body) {
  ApiErrorBody out;
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return out;
  if (auto it = json.find("code"); it != json.end() && it->is_string()) out.code = printable(it->get<std::string>());
  if (auto it = json.find("message"); it != json.end() && it->is_string()) {
    out.message = printable(it->get<std::string>(), 500);
  }
  return out;
}

std::string describe_error(const error_code& ec, SSL* ssl) {
  if (ec == beast::error::timeout || ec == asio::error::timed_out) return "timed out";
  if (ec == asio::ssl::error::stream_truncated) return "TLS: the server closed the connection abruptly";
  if (ec.category() == asio::error::get_ssl_category()) {
    if (ssl != nullptr) {
      const long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK) {
        return std::string("TLS: certificate verify failed (") + X509_verify_cert_error_string(verify) + ")";
      }
    }
    return "TLS: " + sentence_case(ec.message());
  }
  if (ec == asio::error::eof || ec == http::error::end_of_stream) return "the server closed the connection";
  return sentence_case(ec.message());
}

asio::awaitable<Result<beast::tcp_stream>> connect_tcp(asio::any_io_executor ex, const Url& url,
                                                       Clock::time_point deadline) {
  const std::string where = "cannot connect to " + url.origin() + ": ";
  const std::string port = std::to_string(url.port);

  // The resolver has no deadline of its own: a timer cancels it. Both live
  // in shared state because the timer's handler may outlive this frame.
  struct Resolve {
    explicit Resolve(const asio::any_io_executor& e) : resolver(e), timer(e) {}
    tcp::resolver resolver;
    asio::steady_timer timer;
    bool timed_out = false;
  };
  auto r = std::make_shared<Resolve>(ex);
  r->timer.expires_at(deadline);
  r->timer.async_wait([r](error_code ec) {
    if (!ec) {
      r->timed_out = true;
      r->resolver.cancel();
    }
  });
  const auto flags = tcp::resolver::numeric_service;
  auto [rec, results] =
      co_await r->resolver.async_resolve(url.host, port, flags, asio::as_tuple(asio::use_awaitable));
  r->timer.cancel();
  if (r->timed_out) co_return fail(Errc::unavailable, where + "timed out resolving " + url.host);
  if (rec) co_return fail(Errc::unavailable, where + "cannot resolve " + url.host + ": " + describe_error(rec));

  beast::tcp_stream stream(ex);
  stream.expires_at(deadline);
  auto [cec, endpoint] = co_await stream.async_connect(results, asio::as_tuple(asio::use_awaitable));
  (void)endpoint;
  if (cec) co_return fail(Errc::unavailable, where + describe_error(cec));
  error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);
  co_return std::move(stream);
}

asio::awaitable<Result<Response>> async_request(std::string method, std::string url, Headers headers,
                                                std::string body, tls::ClientTrust trust,
                                                RequestOptions options) {
  co_return co_await do_request(std::move(method), std::move(url), std::move(headers), std::move(body),
                                std::move(trust), options);
}

Result<Response> request(std::string_view method, std::string_view url, const Headers& headers,
                         std::string_view body, const tls::ClientTrust& trust, RequestOptions options) {
  asio::io_context io;
  std::optional<Result<Response>> out;
  // co_spawn's completion needs a default-constructible value: Result is not.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        out.emplace(co_await do_request(std::string(method), std::string(url), headers, std::string(body), trust,
                                        options));
      },
      [&out](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          out.emplace(fail(Errc::internal, std::string("HTTP client: ") + ex.what()));
        }
      });
  io.run();
  if (!out) return fail(Errc::internal, "HTTP client: the request never completed");
  return std::move(*out);
}

}  // namespace paddock::http_client
