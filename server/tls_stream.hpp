#pragma once
// TLS for the server's connections: OpenSSL driven directly over Beast's
// TCP stream. Asio's ssl::stream keeps four 17 KiB buffers per connection
// for its whole life (two of its own and a BIO pair's two), 68 KiB for each
// of thousands of idle agents. Here ciphertext goes through buffers sized by
// the traffic: an idle connection keeps a few hundred bytes. OpenSSL makes
// the handshake; past a TLS 1.3 handshake the records are Tls13Records' and
// OpenSSL's session (13 KiB) is freed. A TLS 1.2 connection keeps it, with
// its record buffers released whenever they are empty.
//
// An Asio AsyncStream, so Beast's HTTP and WebSocket code runs on it. As for
// any stream: at most one read and one write outstanding, the handshake and
// the shutdown alone, all on the connection's strand, and the stream stays
// put (neither moved nor destroyed) while one is pending. Deadlines are the
// next layer's (beast::tcp_stream::expires_after). A read never writes: the
// answer to a peer's KeyUpdate leaves with the next write.

#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <cstddef>
#include <memory>
#include <string>

struct ssl_st;
struct ssl_ctx_st;

namespace paddock {
namespace asio = boost::asio;
namespace beast = boost::beast;
using error_code = boost::system::error_code;
}  // namespace paddock

namespace paddock::server {

class TlsStream {
 public:
  using executor_type = beast::tcp_stream::executor_type;
  using next_layer_type = beast::tcp_stream;

  // The server's side of a connection on `next`, with a session from
  // `context`. Throws std::bad_alloc if OpenSSL cannot allocate it.
  TlsStream(beast::tcp_stream next, ssl_ctx_st* context);
  TlsStream(TlsStream&&);
  ~TlsStream();

  // Lets streams on `context` carry their own records once a TLS 1.3
  // handshake is done (Tls13Records), by handing them its traffic secrets.
  // Call before the first stream; without it OpenSSL carries every record.
  static void prepare_context(ssl_ctx_st* context);

  executor_type get_executor() noexcept { return next_.get_executor(); }
  beast::tcp_stream& next_layer() noexcept { return next_; }
  // The OpenSSL session; null once the records are this stream's own.
  ssl_st* native_handle() noexcept;
  bool carries_records() const noexcept;

  template <class Token>
  auto async_handshake(Token&& token) {
    return initiate<void(error_code)>(Handshake{}, std::forward<Token>(token));
  }

  // Sends our close_notify. The peer's is not awaited: the caller reads (or
  // not) what the peer still sends, from the next layer.
  template <class Token>
  auto async_shutdown(Token&& token) {
    return initiate<void(error_code)>(Shutdown{}, std::forward<Token>(token));
  }

  // Takes what the records already received hold, up to the buffers' size:
  // one TCP read can bring many records, and they come back in one call.
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return initiate<void(error_code, std::size_t)>(Read<MutableBuffers>{buffers}, std::forward<Token>(token));
  }

  // Encrypts up to kMaxWrite bytes of `buffers` and writes the records.
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return initiate<void(error_code, std::size_t)>(Write<ConstBuffers>{buffers}, std::forward<Token>(token));
  }

  static constexpr std::size_t kMaxWrite = 64 * 1024;
  static constexpr std::size_t kRecordSize = 16 * 1024;  // TLS's largest plaintext per record

  // Bytes of buffer this stream holds besides OpenSSL's session: what an
  // idle connection costs here (tests check it stays small).
  std::size_t buffered_capacity() const noexcept;

 private:
  class Core;  // the SSL, its BIO and the ciphertext; stays put when the stream moves

  // What an OpenSSL step came to.
  struct Step {
    enum class Next { done, more_input } next = Next::done;
    error_code ec;
    std::size_t bytes = 0;
  };

  // Each operation is one OpenSSL step, repeated while it asks for input.
  struct Handshake {
    static constexpr bool writes = true, transfers = false;
    Step operator()(Core& core) const;
  };
  struct Shutdown {
    static constexpr bool writes = true, transfers = false;
    Step operator()(Core& core) const;
  };
  template <class MutableBuffers>
  struct Read {
    static constexpr bool writes = false, transfers = true;
    MutableBuffers buffers;
    Step operator()(Core& core) const {
      Step step;
      for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
        asio::mutable_buffer b = *it;
        while (b.size() > 0) {
          const Step one = read(core, b.data(), b.size());
          if (one.bytes == 0) return step.bytes > 0 ? step : one;
          step.bytes += one.bytes;
          b += one.bytes;
        }
      }
      return step;
    }
  };
  template <class ConstBuffers>
  struct Write {
    static constexpr bool writes = true, transfers = true;
    ConstBuffers buffers;
    Step operator()(Core& core) const {
      const asio::const_buffer first = *asio::buffer_sequence_begin(buffers);
      const std::size_t total = std::min(asio::buffer_size(buffers), kMaxWrite);
      if (first.size() >= total) return write(core, first.data(), total);
      // Several buffers (a frame's header, then its payload): the first
      // record takes from each, rather than a record for the header alone.
      // The rest comes back in the next call, from within the payload.
      const std::size_t joined_size = std::min(total, kRecordSize);
      std::string& joined = scratch();
      joined.resize(joined_size);
      asio::buffer_copy(asio::buffer(joined), buffers, joined_size);
      return write(core, joined.data(), joined_size);
    }
  };

  static Step read(Core& core, void* data, std::size_t size);
  static Step write(Core& core, const void* data, std::size_t size);
  static std::string& scratch();

  // Buffers between the operations and the next layer.
  asio::mutable_buffer input_space();
  void input_received(std::size_t n);
  bool has_output() const;
  asio::const_buffer output_to_send();  // valid until output_sent()
  void output_sent();

  // Runs an operation's steps: input is read from the next layer whenever a
  // step asks for it, and what a writing step produced is written before
  // the operation reads again or completes. Never completes inside the
  // initiating call.
  template <class Operation>
  struct Run {
    TlsStream& stream;
    Operation operation;
    enum class State { starting, reading, writing, posted } state = State::starting;
    Step step{};

    template <class Self>
    void operator()(Self& self, error_code ec = {}, std::size_t n = 0) {
      switch (state) {
        case State::starting:
          break;
        case State::reading:
          stream.input_received(n);
          if (ec && n == 0) return complete(self, stream.read_failure(ec), 0);
          break;
        case State::writing:
          stream.output_sent();
          if (ec) return complete(self, ec, 0);
          if (step.next == Step::Next::more_input) return read_more(self);
          return complete(self, step.ec, step.bytes);
        case State::posted:
          return complete(self, step.ec, step.bytes);
      }
      step = operation(*stream.core_);
      if (Operation::writes && stream.has_output()) {
        state = State::writing;
        asio::async_write(stream.next_, stream.output_to_send(), std::move(self));
      } else if (step.next == Step::Next::more_input) {
        read_more(self);
      } else if (state == State::starting) {
        state = State::posted;
        asio::post(std::move(self));
      } else {
        complete(self, step.ec, step.bytes);
      }
    }

    template <class Self>
    void read_more(Self& self) {
      state = State::reading;
      stream.next_.async_read_some(stream.input_space(), std::move(self));
    }

    template <class Self>
    static void complete(Self& self, error_code ec, std::size_t n) {
      if constexpr (Operation::transfers) {
        self.complete(ec, n);
      } else {
        self.complete(ec);
      }
    }
  };

  template <class Signature, class Operation, class Token>
  auto initiate(Operation operation, Token&& token) {
    return asio::async_compose<Token, Signature>(Run<Operation>{*this, std::move(operation)}, token, next_);
  }

  error_code read_failure(error_code ec) const;

  beast::tcp_stream next_;
  std::unique_ptr<Core> core_;
};

}  // namespace paddock::server
