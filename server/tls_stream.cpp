#include "server/tls_stream.hpp"

#include "server/read_buffer.hpp"
#include "server/tls13_records.hpp"

#include <boost/asio/ssl/error.hpp>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <new>
#include <optional>
#include <string_view>

namespace paddock::server {

namespace {

// Output room kept between writes at most this large: an idle connection's
// pongs fit, a handshake's flight or a stream's batch is given back.
constexpr std::size_t kKeptOutput = 512;
// A record's framing and tag, at most (TLS 1.2 GCM: 29 bytes).
constexpr std::size_t kRecordOverhead = 64;

}  // namespace

// The SSL with a BIO of our own: OpenSSL reads ciphertext from `in_` and
// writes it to `out_`, plain memory that the operations fill from the next
// layer and drain to it (through `wire_`, so that what OpenSSL writes while
// a write is under way waits for the next one). After a TLS 1.3 handshake
// the records are `records_`'s on the same buffers, and the SSL is gone.
class TlsStream::Core {
 public:
  explicit Core(SSL_CTX* context) : ssl_(SSL_new(context)) {
    BIO_METHOD* const bio_method = method();
    BIO* bio = ssl_ && bio_method ? BIO_new(bio_method) : nullptr;
    if (!bio) {
      SSL_free(ssl_);
      throw std::bad_alloc();
    }
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);  // the SSL owns it
    SSL_set_app_data(ssl_, this);  // for keylog()
    SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
    SSL_set_accept_state(ssl_);
  }
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;
  ~Core() {
    forget_secrets();
    SSL_free(ssl_);
  }

  SSL* ssl() const { return ssl_; }

  // Once the handshake is done: the records become ours if the connection
  // is TLS 1.3 in a suite we carry and OpenSSL has neither read past the
  // handshake nor written under the traffic keys (session tickets), so that
  // both sequence numbers are still 0. Otherwise OpenSSL carries on.
  void take_over_records() {
    const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
    if (SSL_version(ssl_) == TLS1_3_VERSION && cipher && SSL_get_num_tickets(ssl_) == 0 && SSL_pending(ssl_) == 0 &&
        SSL_has_pending(ssl_) == 0) {
      records_ = Tls13Records::make(SSL_CIPHER_get_protocol_id(cipher), client_secret_, server_secret_);
    }
    forget_secrets();
    if (records_) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
  }

  // The traffic secrets, as OpenSSL derives them during the handshake. Set
  // on the context by TlsStream::prepare_context.
  static void keylog(const SSL* ssl, const char* line) {
    auto* core = static_cast<Core*>(SSL_get_app_data(ssl));
    if (!core) return;
    const std::string_view entry(line);
    std::string* secret = entry.starts_with("CLIENT_TRAFFIC_SECRET_0 ")   ? &core->client_secret_
                          : entry.starts_with("SERVER_TRAFFIC_SECRET_0 ") ? &core->server_secret_
                                                                          : nullptr;
    if (!secret) return;
    // "<label> <client random> <secret>", the last two in hex.
    const std::string_view hex = entry.substr(entry.rfind(' ') + 1);
    std::array<unsigned char, 64> bytes{};
    std::size_t size = 0;
    if (hex.size() <= 2 * bytes.size() && OPENSSL_hexstr2buf_ex(bytes.data(), bytes.size(), &size, hex.data(), '\0') == 1) {
      secret->assign(reinterpret_cast<const char*>(bytes.data()), size);
    }
    OPENSSL_cleanse(bytes.data(), bytes.size());
  }

  void forget_secrets() {
    for (std::string* secret : {&client_secret_, &server_secret_}) {
      OPENSSL_cleanse(secret->data(), secret->size());
      std::string().swap(*secret);
    }
  }

  // The outcome of an SSL call that returned `ret`.
  Step outcome(int ret, std::size_t bytes) {
    if (ret > 0) return {Step::Next::done, {}, bytes};
    switch (SSL_get_error(ssl_, ret)) {
      case SSL_ERROR_WANT_READ:
        return {Step::Next::more_input, {}, 0};
      case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
        return {Step::Next::done, asio::error::eof, 0};
      case SSL_ERROR_SSL: {
        failed_ = true;
        const auto code = ERR_get_error();
        ERR_clear_error();
        return {Step::Next::done, error_code(static_cast<int>(code), asio::error::get_ssl_category()), 0};
      }
      default:  // the BIO never blocks on writes and never fails
        failed_ = true;
        ERR_clear_error();
        return {Step::Next::done, asio::ssl::error::stream_truncated, 0};
    }
  }

  bool failed() const { return failed_; }

  ReadBuffer in_;
  std::string out_;   // produced, not yet being written
  std::string wire_;  // being written to the next layer
  std::optional<Tls13Records> records_;

 private:
  static int bio_write(BIO* bio, const char* data, int size) {
    auto* core = static_cast<Core*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    core->out_.append(data, static_cast<std::size_t>(size));
    return size;
  }

  static int bio_read(BIO* bio, char* data, int size) {
    auto* core = static_cast<Core*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    auto& in = core->in_;
    if (in.size() == 0) {
      BIO_set_retry_read(bio);
      return -1;
    }
    const std::size_t n = std::min(in.size(), static_cast<std::size_t>(size));
    std::memcpy(data, in.view().data(), n);
    in.consume(n);
    return static_cast<int>(n);
  }

  static long bio_ctrl(BIO*, int command, long, void*) { return command == BIO_CTRL_FLUSH ? 1 : 0; }

  static BIO_METHOD* method() {
    static BIO_METHOD* const made = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "paddock tls stream");
      if (m) {
        BIO_meth_set_write(m, bio_write);
        BIO_meth_set_read(m, bio_read);
        BIO_meth_set_ctrl(m, bio_ctrl);
      }
      return m;
    }();
    return made;
  }

  SSL* ssl_;
  bool failed_ = false;  // after a fatal error OpenSSL must not be asked to shut down
  std::string client_secret_, server_secret_;  // during the handshake only
};

TlsStream::TlsStream(beast::tcp_stream next, ssl_ctx_st* context)
    : next_(std::move(next)), core_(std::make_unique<Core>(context)) {}
TlsStream::TlsStream(TlsStream&&) = default;
TlsStream::~TlsStream() = default;

void TlsStream::prepare_context(ssl_ctx_st* context) { SSL_CTX_set_keylog_callback(context, &Core::keylog); }

ssl_st* TlsStream::native_handle() noexcept { return core_->ssl(); }

bool TlsStream::carries_records() const noexcept { return core_->records_.has_value(); }

std::size_t TlsStream::buffered_capacity() const noexcept {
  return core_->in_.capacity() + core_->out_.capacity() + core_->wire_.capacity();
}

TlsStream::Step TlsStream::Handshake::operator()(Core& core) const {
  if (!core.ssl()) return {};  // done before
  ERR_clear_error();
  const Step step = core.outcome(SSL_do_handshake(core.ssl()), 0);
  if (step.next == Step::Next::done && !step.ec) core.take_over_records();
  return step;
}

TlsStream::Step TlsStream::Shutdown::operator()(Core& core) const {
  if (core.records_) {
    core.records_->close(core.out_);
    return {};
  }
  // Nothing to say after a failure, or before the handshake finished.
  if (core.failed() || !SSL_is_init_finished(core.ssl())) return {};
  ERR_clear_error();
  const int ret = SSL_shutdown(core.ssl());
  if (ret >= 0) return {};  // ours is written (0: the peer's not yet read)
  return core.outcome(ret, 0);
}

TlsStream::Step TlsStream::read(Core& core, void* data, std::size_t size) {
  if (core.records_) {
    const auto read = core.records_->read(core.in_, data, size);
    if (read.need_more) return {Step::Next::more_input, {}, 0};
    return {Step::Next::done, read.ec, read.bytes};
  }
  ERR_clear_error();
  std::size_t n = 0;
  const int ret = SSL_read_ex(core.ssl(), data, size, &n);
  return core.outcome(ret, n);
}

TlsStream::Step TlsStream::write(Core& core, const void* data, std::size_t size) {
  if (size == 0) return {};
  if (core.records_) {
    const error_code ec = core.records_->write(data, size, core.out_);
    return {Step::Next::done, ec, ec ? 0 : size};
  }
  // The records go into out_ at once: room for all of them in one step.
  core.out_.reserve(core.out_.size() + size + (size / kRecordSize + 1) * kRecordOverhead);
  ERR_clear_error();
  std::size_t n = 0;
  const int ret = SSL_write_ex(core.ssl(), data, size, &n);
  Step step = core.outcome(ret, n);
  // Writing never waits for input once the handshake is done (no
  // renegotiation); asked to, the connection is broken.
  if (step.next == Step::Next::more_input) step = {Step::Next::done, asio::ssl::error::stream_truncated, 0};
  return step;
}

std::string& TlsStream::scratch() {
  thread_local std::string joined;
  return joined;
}

asio::mutable_buffer TlsStream::input_space() { return core_->in_.space(); }

void TlsStream::input_received(std::size_t n) { core_->in_.received(n); }

bool TlsStream::has_output() const { return !core_->out_.empty(); }

asio::const_buffer TlsStream::output_to_send() {
  auto& core = *core_;
  core.wire_.swap(core.out_);
  return asio::buffer(core.wire_);
}

void TlsStream::output_sent() {
  auto& wire = core_->wire_;
  wire.clear();
  if (wire.capacity() > kKeptOutput) std::string().swap(wire);
}

error_code TlsStream::read_failure(error_code ec) const {
  // The peer hung up without a close_notify: the data may be cut short.
  if (ec == asio::error::eof) return asio::ssl::error::stream_truncated;
  return ec;
}

}  // namespace paddock::server
