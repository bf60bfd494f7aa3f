#include "server/tls13_records.hpp"

#include <boost/asio/ssl/error.hpp>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

namespace paddock::server {

namespace {

// Content types (RFC 8446 §5.1) and the one handshake message carried.
constexpr unsigned char kAlert = 21;
constexpr unsigned char kHandshake = 22;
constexpr unsigned char kApplicationData = 23;
constexpr unsigned char kKeyUpdate = 24;
constexpr unsigned char kCloseNotify = 0;
// A ciphertext may exceed its plaintext by this much (§5.2).
constexpr std::size_t kMaxExpansion = 256;
// KeyUpdates in a row, with no data between them, before the peer is cut
// off (OpenSSL's limit too).
constexpr int kMaxKeyUpdatesInARow = 32;

struct SuiteParameters {
  const char* cipher;
  const char* digest;
  std::size_t key_size;
  std::size_t hash_size;
};

std::optional<SuiteParameters> parameters(std::uint16_t suite) {
  switch (static_cast<Tls13Records::Suite>(suite)) {
    case Tls13Records::Suite::aes_128_gcm_sha256:
      return SuiteParameters{"AES-128-GCM", "SHA256", 16, 32};
    case Tls13Records::Suite::aes_256_gcm_sha384:
      return SuiteParameters{"AES-256-GCM", "SHA384", 32, 48};
    case Tls13Records::Suite::chacha20_poly1305_sha256:
      return SuiteParameters{"ChaCha20-Poly1305", "SHA256", 32, 32};
  }
  return std::nullopt;
}

std::size_t index(Tls13Records::Suite suite) { return static_cast<std::size_t>(suite) - 0x1301; }

struct CipherContextFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree>;

// This thread's context for `suite`'s cipher, made once; each record keys
// it afresh (a few hundred nanoseconds) so that connections hold no context
// of their own.
EVP_CIPHER_CTX* cipher_context(Tls13Records::Suite suite) {
  thread_local std::array<CipherContext, 3> contexts;
  CipherContext& ctx = contexts[index(suite)];
  if (!ctx) {
    struct CipherFree {
      void operator()(EVP_CIPHER* cipher) const { EVP_CIPHER_free(cipher); }
    };
    static const std::array<std::unique_ptr<EVP_CIPHER, CipherFree>, 3> ciphers = [] {
      std::array<std::unique_ptr<EVP_CIPHER, CipherFree>, 3> fetched;
      for (std::uint16_t id = 0x1301; id <= 0x1303; ++id) {
        fetched[index(static_cast<Tls13Records::Suite>(id))].reset(EVP_CIPHER_fetch(nullptr, parameters(id)->cipher, nullptr));
      }
      return fetched;
    }();
    const EVP_CIPHER* cipher = ciphers[index(suite)].get();
    CipherContext made(EVP_CIPHER_CTX_new());
    if (!cipher || !made || EVP_CipherInit_ex2(made.get(), cipher, nullptr, nullptr, 1, nullptr) != 1) return nullptr;
    ctx = std::move(made);
  }
  return ctx.get();
}

// HKDF-Expand-Label(secret, label, "", size) of RFC 8446 §7.1.
bool expand_label(const char* digest, const unsigned char* secret, std::size_t secret_size, std::string_view label,
                  unsigned char* out, std::size_t size) {
  struct KdfFree {
    void operator()(EVP_KDF* kdf) const { EVP_KDF_free(kdf); }
  };
  struct KdfContextFree {
    void operator()(EVP_KDF_CTX* ctx) const { EVP_KDF_CTX_free(ctx); }
  };
  static const std::unique_ptr<EVP_KDF, KdfFree> hkdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!hkdf) return false;
  std::unique_ptr<EVP_KDF_CTX, KdfContextFree> ctx(EVP_KDF_CTX_new(hkdf.get()));
  if (!ctx) return false;
  // struct { uint16 length; opaque label<7..255>; opaque context<0..255>; }
  constexpr std::string_view kPrefix = "tls13 ";
  std::string info;
  info.push_back(static_cast<char>(size >> 8));
  info.push_back(static_cast<char>(size & 0xff));
  info.push_back(static_cast<char>(kPrefix.size() + label.size()));
  info.append(kPrefix).append(label);
  info.push_back(0);  // an empty context
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<unsigned char*>(secret), secret_size),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end(),
  };
  return EVP_KDF_derive(ctx.get(), out, size, params) == 1;
}

boost::system::error_code ssl_error(int reason) {
  return {static_cast<int>(ERR_PACK(ERR_LIB_SSL, 0, reason)), boost::asio::error::get_ssl_category()};
}

}  // namespace

std::optional<Tls13Records> Tls13Records::make(std::uint16_t suite, std::string_view client_secret,
                                               std::string_view server_secret) {
  const auto suite_parameters = parameters(suite);
  if (!suite_parameters || client_secret.size() != suite_parameters->hash_size ||
      server_secret.size() != suite_parameters->hash_size) {
    return std::nullopt;
  }
  std::optional<Tls13Records> records(Tls13Records(static_cast<Suite>(suite)));
  if (!records->install(records->client_, reinterpret_cast<const unsigned char*>(client_secret.data())) ||
      !records->install(records->server_, reinterpret_cast<const unsigned char*>(server_secret.data())) ||
      !cipher_context(records->suite_)) {
    ERR_clear_error();
    return std::nullopt;
  }
  return records;
}

Tls13Records::Tls13Records(Tls13Records&&) noexcept = default;
Tls13Records& Tls13Records::operator=(Tls13Records&&) noexcept = default;

Tls13Records::~Tls13Records() {
  OPENSSL_cleanse(&client_, sizeof client_);
  OPENSSL_cleanse(&server_, sizeof server_);
}

bool Tls13Records::install(Direction& direction, const unsigned char* secret) {
  const auto p = *parameters(static_cast<std::uint16_t>(suite_));
  if (secret != direction.secret.data()) std::memcpy(direction.secret.data(), secret, p.hash_size);
  direction.sequence = 0;
  return expand_label(p.digest, direction.secret.data(), p.hash_size, "key", direction.key.data(), p.key_size) &&
         expand_label(p.digest, direction.secret.data(), p.hash_size, "iv", direction.iv.data(), kIvSize);
}

bool Tls13Records::update(Direction& direction) {
  const auto p = *parameters(static_cast<std::uint16_t>(suite_));
  std::array<unsigned char, kMaxSecret> next{};
  const bool ok = expand_label(p.digest, direction.secret.data(), p.hash_size, "traffic upd", next.data(), p.hash_size) &&
                  install(direction, next.data());
  OPENSSL_cleanse(next.data(), next.size());
  return ok;
}

bool Tls13Records::protect(Direction& direction, bool seal, const unsigned char* header, unsigned char* text,
                           std::size_t size, unsigned char* tag) {
  // A sequence number must never wrap (§5.3); 2^64 records will not come.
  if (direction.sequence == UINT64_MAX) return false;
  EVP_CIPHER_CTX* ctx = cipher_context(suite_);
  if (!ctx) return false;
  // The per-record nonce: the IV xor the sequence number, left-padded.
  std::array<unsigned char, kIvSize> nonce = direction.iv;
  for (int i = 0; i < 8; ++i) nonce[kIvSize - 1 - i] ^= static_cast<unsigned char>(direction.sequence >> (8 * i));
  int n = 0, last = 0;
  const bool ok = EVP_CipherInit_ex2(ctx, nullptr, direction.key.data(), nonce.data(), seal ? 1 : 0, nullptr) == 1 &&
                  (seal || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagSize, tag) == 1) &&
                  EVP_CipherUpdate(ctx, nullptr, &n, header, kHeaderSize) == 1 &&
                  EVP_CipherUpdate(ctx, text, &n, text, static_cast<int>(size)) == 1 &&
                  EVP_CipherFinal_ex(ctx, text + n, &last) == 1 &&
                  (!seal || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagSize, tag) == 1);
  if (!ok) {
    ERR_clear_error();
    return false;
  }
  ++direction.sequence;
  return true;
}

bool Tls13Records::seal(unsigned char content_type, const unsigned char* data, std::size_t size, std::string& out) {
  const std::size_t length = size + 1 + kTagSize;  // the content type, then the tag
  const std::size_t at = out.size();
  out.resize(at + kHeaderSize + length);
  auto* record = reinterpret_cast<unsigned char*>(out.data() + at);
  record[0] = kApplicationData;  // what every protected record says it is
  record[1] = 0x03;
  record[2] = 0x03;
  record[3] = static_cast<unsigned char>(length >> 8);
  record[4] = static_cast<unsigned char>(length & 0xff);
  unsigned char* text = record + kHeaderSize;
  if (size > 0) std::memcpy(text, data, size);
  text[size] = content_type;
  if (protect(server_, true, record, text, size + 1, text + size + 1)) return true;
  out.resize(at);
  return false;
}

boost::system::error_code Tls13Records::write(const void* data, std::size_t size, std::string& out) {
  if (ended_ && ended_ != boost::asio::error::eof) return ended_;
  const auto* bytes = static_cast<const unsigned char*>(data);
  out.reserve(out.size() + size + (size / kMaxPlaintext + 2) * (kHeaderSize + 1 + kTagSize));
  // The peer asked us to update our keys: our KeyUpdate goes first (§4.6.3).
  if (update_requested_) {
    const unsigned char key_update[] = {kKeyUpdate, 0, 0, 1, 0};  // update_not_requested
    if (!seal(kHandshake, key_update, sizeof key_update, out) || !update(server_)) return fail(ERR_R_INTERNAL_ERROR).ec;
    update_requested_ = false;
  }
  for (std::size_t done = 0; done < size;) {
    const std::size_t n = std::min(size - done, kMaxPlaintext);
    if (!seal(kApplicationData, bytes + done, n, out)) return fail(ERR_R_INTERNAL_ERROR).ec;
    done += n;
  }
  return {};
}

void Tls13Records::close(std::string& out) {
  if (ended_ && ended_ != boost::asio::error::eof) return;  // nothing to say after a failure
  const unsigned char close_notify[] = {1, kCloseNotify};  // level warning
  if (!seal(kAlert, close_notify, sizeof close_notify, out)) fail(ERR_R_INTERNAL_ERROR);
}

Tls13Records::Read Tls13Records::read(ReadBuffer& in, void* data, std::size_t size) {
  for (;;) {
    if (plaintext_left_ > 0) {
      const std::size_t n = std::min(size, plaintext_left_);
      std::memcpy(data, in.data(), n);
      in.consume(n);
      plaintext_left_ -= n;
      if (plaintext_left_ == 0) in.consume(std::exchange(trailer_, 0));
      return {n, false, {}};
    }
    if (ended_) return {0, false, ended_};
    if (in.size() < kHeaderSize) return {0, true, {}};
    auto* record = reinterpret_cast<unsigned char*>(in.data());
    const std::size_t length = std::size_t{record[3]} << 8 | record[4];
    // The outer type of every protected record is application data; the
    // legacy version is ignored (§5.1).
    if (record[0] != kApplicationData) return fail(SSL_R_UNEXPECTED_RECORD);
    if (length > kMaxPlaintext + kMaxExpansion) return fail(SSL_R_ENCRYPTED_LENGTH_TOO_LONG);
    if (length < 1 + kTagSize) return fail(SSL_R_RECORD_TOO_SMALL);
    if (in.size() < kHeaderSize + length) return {0, true, {}};
    unsigned char* text = record + kHeaderSize;
    const std::size_t sealed = length - kTagSize;
    if (!protect(client_, false, record, text, sealed, text + sealed)) {
      return fail(SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC);
    }
    // The content type is the last byte that is not padding (§5.4).
    std::size_t end = sealed;
    while (end > 0 && text[end - 1] == 0) --end;
    if (end == 0) return fail(SSL_R_UNEXPECTED_MESSAGE);
    const unsigned char type = text[end - 1];
    const std::size_t content = end - 1;
    if (content > kMaxPlaintext) return fail(SSL_R_DATA_LENGTH_TOO_LONG);
    const std::string_view plaintext(reinterpret_cast<const char*>(text), content);
    in.consume(kHeaderSize);
    switch (type) {
      case kApplicationData:
        key_updates_in_a_row_ = 0;
        plaintext_left_ = content;
        trailer_ = length - content;
        if (content == 0) in.consume(std::exchange(trailer_, 0));
        continue;
      case kAlert:
        if (content != 2) return fail(SSL_R_INVALID_ALERT);
        if (static_cast<unsigned char>(plaintext[1]) == kCloseNotify) {
          in.consume(length);
          ended_ = boost::asio::error::eof;
          return {0, false, ended_};
        }
        return fail(SSL_AD_REASON_OFFSET + static_cast<unsigned char>(plaintext[1]));
      case kHandshake:
        if (const int reason = on_key_update(plaintext)) return fail(reason);
        in.consume(length);
        continue;
      default:
        return fail(SSL_R_UNEXPECTED_RECORD);
    }
  }
}

int Tls13Records::on_key_update(std::string_view message) {
  // Past the handshake a client sends KeyUpdate alone, whole in its record
  // (§4.6.3, §5.1): type, a 3-byte length of 1, request_update.
  if (message.empty() || static_cast<unsigned char>(message[0]) != kKeyUpdate) return SSL_R_UNEXPECTED_MESSAGE;
  if (message.size() != 5 || message.substr(1, 3) != std::string_view("\0\0\1", 3)) return SSL_R_BAD_KEY_UPDATE;
  const auto request = static_cast<unsigned char>(message[4]);
  if (request > 1) return SSL_R_BAD_KEY_UPDATE;
  if (++key_updates_in_a_row_ > kMaxKeyUpdatesInARow) return SSL_R_TOO_MANY_KEY_UPDATES;
  if (!update(client_)) return ERR_R_INTERNAL_ERROR;
  if (request == 1) update_requested_ = true;
  return 0;
}

Tls13Records::Read Tls13Records::fail(int reason) {
  ended_ = ssl_error(reason);
  plaintext_left_ = trailer_ = 0;
  return {0, false, ended_};
}

}  // namespace paddock::server
