#pragma once
// Small cryptographic helpers over OpenSSL: randomness, digests, encodings
// and constant-time comparison. All functions are thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace paddock::crypto {

// `n` bytes from OpenSSL's CSPRNG. Aborts if the CSPRNG fails (it cannot be
// trusted to continue without randomness).
std::string random_bytes(std::size_t n);

// A random token of `bytes` entropy, encoded with [A-Za-z0-9] only so it is
// safe in URLs, shell commands and HTTP Basic credentials.
std::string random_token(std::size_t bytes);

std::string sha256(std::string_view data);      // raw 32 bytes
std::string sha256_hex(std::string_view data);  // lowercase hex
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw

std::string hex_encode(std::string_view data);
std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);
std::string base64url_encode(std::string_view data);  // no padding
std::optional<std::string> base64url_decode(std::string_view text);

// Compares in time independent of where the inputs differ.
bool constant_time_equals(std::string_view a, std::string_view b);

// Hash of a high-entropy secret for storage at rest: hex(sha256(salt || secret)).
// Secrets here are random 256-bit values, so a fast salted hash is enough;
// the salt keeps equal secrets from having equal hashes.
std::string hash_secret(std::string_view salt, std::string_view secret);

// Authenticated encryption (AES-256-GCM) for secrets the server must show
// again later: base64(nonce || ciphertext || tag). `key` is 32 bytes.
std::string seal(std::string_view key, std::string_view plaintext);
std::optional<std::string> unseal(std::string_view key, std::string_view sealed);

}  // namespace paddock::crypto
