#pragma once
// TLS 1.3's record layer (RFC 8446 §5), for a connection whose handshake
// OpenSSL made. An OpenSSL session costs about 13 KiB for its whole life,
// most of it record-layer state sized for features a TLS 1.3 connection
// never uses once the handshake is done; an idle agent's connection keeps
// that 13 KiB for days. Past the handshake this class carries the records
// instead: the two traffic secrets, the keys and IVs derived from them and
// two sequence numbers, about 200 bytes. The ciphers themselves are
// OpenSSL's, in per-thread contexts keyed afresh for each record. The same
// split as kernel TLS, where OpenSSL hands a finished handshake's keys over.
//
// Carried: AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 (every TLS 1.3
// suite OpenSSL enables by default), application data, alerts (close_notify
// is the end of the stream, any other one a failure) and KeyUpdate in both
// directions. Anything else the peer sends past the handshake fails the
// connection, as in OpenSSL with post-handshake authentication off.

#include "server/read_buffer.hpp"

#include <boost/system/error_code.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace paddock::server {

class Tls13Records {
 public:
  enum class Suite : std::uint16_t { aes_128_gcm_sha256 = 0x1301, aes_256_gcm_sha384 = 0x1302, chacha20_poly1305_sha256 = 0x1303 };

  // The records of a connection with `suite` whose application traffic
  // secrets are these (RFC 8446 §7.1), both sequence numbers at 0. Nothing
  // if the suite is not one of the three or the secrets do not fit it.
  static std::optional<Tls13Records> make(std::uint16_t suite, std::string_view client_secret,
                                          std::string_view server_secret);

  Tls13Records(const Tls13Records&) = delete;
  Tls13Records& operator=(const Tls13Records&) = delete;
  Tls13Records(Tls13Records&&) noexcept;
  Tls13Records& operator=(Tls13Records&&) noexcept;
  ~Tls13Records();  // wipes the secrets and keys

  struct Read {
    std::size_t bytes = 0;
    bool need_more = false;          // no whole record in `in`; nothing taken
    boost::system::error_code ec;    // eof after the peer's close_notify
  };

  // Plaintext from the records at the front of `in`, up to `size` bytes:
  // what is left of the last record opened, or else the next record's. A
  // record is opened in place, and its plaintext stays in `in` until taken.
  // A read never writes: a KeyUpdate the peer requests goes out ahead of
  // our next write. After a failure every read fails the same way.
  Read read(ReadBuffer& in, void* data, std::size_t size);

  // Seals `size` bytes onto `out` as records of at most 16 KiB each.
  boost::system::error_code write(const void* data, std::size_t size, std::string& out);

  // Seals our close_notify onto `out`, unless the connection failed.
  void close(std::string& out);

  static constexpr std::size_t kMaxPlaintext = 16 * 1024;
  static constexpr std::size_t kHeaderSize = 5;
  static constexpr std::size_t kTagSize = 16;

 private:
  static constexpr std::size_t kMaxSecret = 48;  // SHA-384
  static constexpr std::size_t kMaxKey = 32;
  static constexpr std::size_t kIvSize = 12;

  // One direction's protection: its traffic secret, what it derives and
  // the next record's number.
  struct Direction {
    std::array<unsigned char, kMaxSecret> secret{};
    std::array<unsigned char, kMaxKey> key{};
    std::array<unsigned char, kIvSize> iv{};
    std::uint64_t sequence = 0;
  };

  explicit Tls13Records(Suite suite) : suite_(suite) {}

  bool install(Direction& direction, const unsigned char* secret);
  bool update(Direction& direction);  // the next traffic secret (KeyUpdate)
  bool protect(Direction& direction, bool seal, const unsigned char* header, unsigned char* text, std::size_t size,
               unsigned char* tag);
  bool seal(unsigned char content_type, const unsigned char* data, std::size_t size, std::string& out);
  int on_key_update(std::string_view message);  // 0, or why it is refused
  Read fail(int reason);

  Suite suite_;
  Direction client_, server_;
  // The plaintext of the record last opened, at the front of the input, and
  // its trailer (content type, padding, tag) behind it.
  std::size_t plaintext_left_ = 0;
  std::size_t trailer_ = 0;
  boost::system::error_code ended_;  // eof or the failure every read returns
  bool update_requested_ = false;     // the peer asked for our KeyUpdate
  int key_updates_in_a_row_ = 0;
};

}  // namespace paddock::server
