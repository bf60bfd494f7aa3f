#pragma once
// ES256 (ECDSA P-256) JSON Web Tokens: the server signs short-lived stream
// tokens with a key from its KeyRing; agents verify them against the JWKS the
// server publishes (docs: streams.md, section 2). Only ES256 is accepted, so
// "alg" confusion ("none", HS256 keyed with the public key) cannot happen.

#include "common/result.hpp"

#include <nlohmann/json.hpp>
#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace paddock::jwt {

// Longer tokens are refused before any parsing.
inline constexpr std::size_t kMaxTokenSize = 8 * 1024;

// An ES256 private key and its key id. Immutable once built: copies share the
// key, and every const member may be called from several threads at once.
class SigningKey {
 public:
  // A fresh P-256 key. Aborts if OpenSSL cannot generate one.
  static SigningKey generate();
  // A P-256 private key in PEM (PKCS#8 or SEC1); anything else is refused.
  // Encrypted PEM is refused rather than prompting for a passphrase.
  static Result<SigningKey> from_pem(std::string_view pem);

  // base64url of the first 12 bytes of sha256(SubjectPublicKeyInfo DER).
  const std::string& kid() const noexcept { return kid_; }
  // Unencrypted PKCS#8 PEM.
  std::string private_pem() const;
  // {"kty":"EC","crv":"P-256","x","y","kid","alg":"ES256","use":"sig"}
  nlohmann::json public_jwk() const;
  // A compact JWS with header {"alg":"ES256","typ":"JWT","kid":kid()}.
  // `claims` must be an object with an integer "exp" (verify() requires it),
  // valid UTF-8, and the token must fit in kMaxTokenSize.
  Result<std::string> sign(const nlohmann::json& claims) const;

 private:
  SigningKey(std::shared_ptr<EVP_PKEY> key, std::string kid);
  std::shared_ptr<EVP_PKEY> key_;
  std::string kid_;
  friend class KeySet;
};

// A set of ES256 public keys by kid (a JWKS). A value type; const members are
// safe to call concurrently.
class KeySet {
 public:
  KeySet() = default;
  // {"keys":[jwk, ...]}: every key must be EC, P-256, alg ES256 (or absent),
  // use "sig" (or absent), with a point on the curve and a unique kid; a key
  // carrying private material ("d") is refused. All or nothing.
  static Result<KeySet> from_jwks(const nlohmann::json& jwks);

  // Adds one public JWK (same rules as from_jwks). A kid already present
  // with the same key is a no-op; with a different key it is Errc::conflict.
  Status add(const nlohmann::json& jwk);
  // Adds the public half of `key`.
  Status add(const SigningKey& key);

  nlohmann::json to_jwks() const;  // {"keys":[...]}, in kid order
  bool contains(std::string_view kid) const;
  std::size_t size() const noexcept { return keys_.size(); }
  bool empty() const noexcept { return keys_.empty(); }

 private:
  struct Entry {
    std::shared_ptr<EVP_PKEY> key;
    std::string x, y;  // raw 32-byte big-endian coordinates
  };
  Status insert(std::string kid, Entry entry);
  std::map<std::string, Entry, std::less<>> keys_;

  friend Result<nlohmann::json> verify(std::string_view, const KeySet&, std::int64_t,
                                       std::int64_t);
};

// Verifies a compact JWS from an untrusted peer and returns its claims.
// Checks, in order: size, exactly three canonical base64url parts, a JSON
// object header with alg "ES256" and a kid in `keys`, the signature, a JSON
// object payload, an integer "exp" with exp + leeway > now, and integer
// "nbf"/"iat" (when present) not after now + leeway. Audience, issuer and
// replay checks are the caller's. Every failure is Errc::unauthorized with a
// short message: "malformed token", "unsupported algorithm", "unknown key",
// "bad signature", "token expired" or "token not yet valid".
Result<nlohmann::json> verify(std::string_view token, const KeySet& keys,
                              std::int64_t now_epoch_seconds, std::int64_t leeway_seconds = 0);

// The server's signing keys, kept in a directory as <kid>.pem (mode 0600)
// plus a `current` file naming the key that signs. Older keys stay for
// verification until retired, so keys rotate without breaking live tokens.
// After open(), every member may be called from any thread.
class KeyRing {
 public:
  // Loads the keys in `dir` (created 0700 if absent); with no keys, makes
  // one. Fails on an unreadable or foreign key file, a file whose name is not
  // its key's kid, or a `current` file naming a missing key.
  static Result<KeyRing> open(const std::filesystem::path& dir);

  KeyRing(KeyRing&&) noexcept;
  KeyRing& operator=(KeyRing&&) noexcept;
  ~KeyRing();

  // Makes and stores a new key and makes it current; the old one stays.
  Result<std::string> rotate();  // the new kid
  // Forgets a non-current key and deletes its file.
  Status retire(std::string_view kid);

  std::string current_kid() const;
  Result<std::string> sign(const nlohmann::json& claims) const;
  Result<nlohmann::json> verify(std::string_view token, std::int64_t now_epoch_seconds,
                                std::int64_t leeway_seconds = 0) const;
  KeySet public_keys() const;  // every key, current and older

 private:
  struct State;
  explicit KeyRing(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace paddock::jwt
