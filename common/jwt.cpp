#include "common/jwt.hpp"

#include "common/crypto.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <system_error>
#include <utility>
#include <vector>

namespace paddock::jwt {

using nlohmann::json;

namespace {

constexpr std::size_t kCoordinateSize = 32;             // P-256 field element
constexpr std::size_t kSignatureSize = 2 * kCoordinateSize;  // R || S
constexpr std::size_t kKidBytes = 12;
constexpr std::size_t kMaxKidLength = 128;
constexpr std::size_t kMaxJwksKeys = 64;
constexpr std::size_t kMaxPemSize = 64 * 1024;
constexpr int kMaxJsonDepth = 32;

// DER SubjectPublicKeyInfo of a P-256 key up to the uncompressed point:
// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes) }.
// The kid hashes this prefix plus 04||x||y, i.e. what i2d_PUBKEY gives for
// an uncompressed key, but independent of how a PEM file encoded the point.
constexpr std::array<unsigned char, 27> kSpkiPrefix = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
    0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};

struct BioFree { void operator()(BIO* p) const { BIO_free(p); } };
struct PkeyCtxFree { void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); } };
struct MdCtxFree { void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); } };
struct EcdsaSigFree { void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); } };
struct BnFree { void operator()(BIGNUM* p) const { BN_free(p); } };
using BioPtr = std::unique_ptr<BIO, BioFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, EcdsaSigFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* key) {
  return std::shared_ptr<EVP_PKEY>(key, [](EVP_PKEY* p) { EVP_PKEY_free(p); });
}

// Drops whatever OpenSSL queued on this thread's error stack during a call,
// so failures on untrusted input leave nothing behind for unrelated code.
class OpensslErrorScope {
 public:
  OpensslErrorScope() { ERR_set_mark(); }
  ~OpensslErrorScope() { ERR_pop_to_mark(); }
  OpensslErrorScope(const OpensslErrorScope&) = delete;
  OpensslErrorScope& operator=(const OpensslErrorScope&) = delete;
};

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

unsigned char* bytes_of(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

Error unauthorized(std::string message) { return Error{Errc::unauthorized, std::move(message)}; }
Error invalid(std::string message) { return Error{Errc::invalid_input, std::move(message)}; }

// base64url without padding, and only the one canonical spelling of the bytes
// (unused trailing bits zero), so a token has exactly one valid form.
std::optional<std::string> decode_canonical(std::string_view text) {
  auto bytes = crypto::base64url_decode(text);
  if (!bytes || crypto::base64url_encode(*bytes) != text) return std::nullopt;
  return bytes;
}

// A JSON object from untrusted text: no duplicate keys (parsers disagree on
// which one wins), bounded nesting, valid UTF-8 (nlohmann checks it).
std::optional<json> parse_object(std::string_view text) {
  std::vector<std::set<std::string, std::less<>>> open_objects;
  bool refused = false;
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event,
                                            json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        [[fallthrough]];
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) refused = true;
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (open_objects.empty() ||
            !open_objects.back().insert(parsed.get_ref<const std::string&>()).second) {
          refused = true;
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    json value = json::parse(text.begin(), text.end(), check, /*allow_exceptions=*/false);
    if (refused || value.is_discarded() || !value.is_object()) return std::nullopt;
    return value;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

// An integer NumericDate, saturated to int64 (larger is "forever").
std::optional<std::int64_t> integer_claim(const json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    const auto u = it->get<std::uint64_t>();
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    return u > kMax ? std::numeric_limits<std::int64_t>::max() : static_cast<std::int64_t>(u);
  }
  if (it->is_number_integer()) return it->get<std::int64_t>();
  return std::nullopt;
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {  // b >= 0
  return a > std::numeric_limits<std::int64_t>::max() - b ? std::numeric_limits<std::int64_t>::max()
                                                          : a + b;
}

bool is_p256(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC") != 1) return false;
  std::array<char, 64> name{};
  std::size_t length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name.data(), name.size(),
                                     &length) != 1) {
    return false;  // explicit curve parameters, or no group at all
  }
  const std::string_view group(name.data(), length);
  return group == "prime256v1" || group == "P-256";
}

std::optional<std::string> coordinate(EVP_PKEY* key, const char* param) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &raw) != 1) return std::nullopt;
  const BnPtr bn(raw);
  std::string out(kCoordinateSize, '\0');
  if (BN_bn2binpad(bn.get(), bytes_of(out), static_cast<int>(out.size())) < 0) return std::nullopt;
  return out;
}

// A public-only P-256 key from raw coordinates, refused unless the point is
// valid (in range, on the curve, not at infinity).
std::shared_ptr<EVP_PKEY> public_key_from_xy(const std::string& x, const std::string& y) {
  if (x.size() != kCoordinateSize || y.size() != kCoordinateSize) return nullptr;
  std::string point = "\x04" + x + y;
  std::string group = "prime256v1";
  const std::array<OSSL_PARAM, 3> params = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group.data(), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end()};
  const PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY,
                        const_cast<OSSL_PARAM*>(params.data())) != 1) {
    return nullptr;
  }
  auto key = own(raw);
  const PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
  return key;
}

std::string kid_of(const std::string& x, const std::string& y) {
  std::string spki(reinterpret_cast<const char*>(kSpkiPrefix.data()), kSpkiPrefix.size());
  spki.append(x).append(y);
  return crypto::base64url_encode(crypto::sha256(spki).substr(0, kKidBytes));
}

bool valid_kid(std::string_view kid) {
  if (kid.empty() || kid.size() > kMaxKidLength) return false;
  for (const char c : kid) {
    if (c <= 0x20 || c >= 0x7f) return false;  // printable ASCII, no spaces
  }
  return true;
}

// ES256 signature of `input`, as the JWS raw R || S (RFC 7518, 3.4).
std::optional<std::string> es256_sign(EVP_PKEY* key, std::string_view input) {
  const MdCtxPtr md(EVP_MD_CTX_new());
  std::size_t length = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &length, bytes_of(input), input.size()) != 1) {
    return std::nullopt;
  }
  std::string der(length, '\0');
  if (EVP_DigestSign(md.get(), bytes_of(der), &length, bytes_of(input), input.size()) != 1) {
    return std::nullopt;
  }
  const unsigned char* p = bytes_of(std::string_view(der));
  const EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(length)));
  if (!sig) return std::nullopt;
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out(kSignatureSize, '\0');
  if (BN_bn2binpad(r, bytes_of(out), kCoordinateSize) < 0 ||
      BN_bn2binpad(s, bytes_of(out) + kCoordinateSize, kCoordinateSize) < 0) {
    return std::nullopt;
  }
  return out;
}

bool es256_verify(EVP_PKEY* key, std::string_view input, std::string_view raw_signature) {
  if (raw_signature.size() != kSignatureSize) return false;
  BnPtr r(BN_bin2bn(bytes_of(raw_signature), kCoordinateSize, nullptr));
  BnPtr s(BN_bin2bn(bytes_of(raw_signature) + kCoordinateSize, kCoordinateSize, nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return false;
  (void)r.release();  // owned by sig now
  (void)s.release();
  const int der_length = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (der_length <= 0) return false;
  std::string der(static_cast<std::size_t>(der_length), '\0');
  unsigned char* out = bytes_of(der);
  if (i2d_ECDSA_SIG(sig.get(), &out) != der_length) return false;
  const MdCtxPtr md(EVP_MD_CTX_new());
  return md && EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(md.get(), bytes_of(std::string_view(der)), der.size(), bytes_of(input),
                          input.size()) == 1;
}

// A private key in PEM must never make OpenSSL prompt on the terminal.
int refuse_passphrase(char*, int, int, void*) { return -1; }

// ---- files ----

Status write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  const auto dir = path.parent_path();
  const auto tmp = dir / ("." + path.filename().string() + ".tmp-" + crypto::random_token(8));
  const auto fail = [&](const char* what) -> Status {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Error{Errc::io, std::string(what) + " " + path.string() + ": " + std::strerror(err)};
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail("cannot create");
  // The umask may not widen 0600, but a restrictive one could leave the
  // owner unable to read its own key: set the mode explicitly.
  bool ok = ::fchmod(fd, 0600) == 0;
  for (std::size_t done = 0; ok && done < content.size();) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    else done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  if (!ok) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return fail("cannot write");
  }
  if (::close(fd) != 0) return fail("cannot write");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename into");
  // Make the rename itself durable.
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Ok{};
}

Result<std::string> read_small_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Error{Errc::io, "cannot read " + path.string() + ": " + std::strerror(errno)};
  std::string out;
  std::array<char, 4096> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Error{Errc::io, "cannot read " + path.string() + ": " + std::strerror(err)};
    }
    if (n == 0) break;
    out.append(buf.data(), static_cast<std::size_t>(n));
    if (out.size() > kMaxPemSize) {
      ::close(fd);
      return Error{Errc::invalid_input, path.string() + ": file too large"};
    }
  }
  ::close(fd);
  return out;
}

}  // namespace

// ---- SigningKey ----

SigningKey::SigningKey(std::shared_ptr<EVP_PKEY> key, std::string kid)
    : key_(std::move(key)), kid_(std::move(kid)) {}

SigningKey SigningKey::generate() {
  const OpensslErrorScope errors;
  const PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") != 1 ||
      EVP_PKEY_generate(ctx.get(), &raw) != 1) {
    std::abort();  // no usable CSPRNG or EC support: nothing sensible to do
  }
  auto key = own(raw);
  auto x = coordinate(key.get(), OSSL_PKEY_PARAM_EC_PUB_X);
  auto y = coordinate(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
  if (!x || !y) std::abort();
  return SigningKey(std::move(key), kid_of(*x, *y));
}

Result<SigningKey> SigningKey::from_pem(std::string_view pem) {
  const OpensslErrorScope errors;
  if (pem.empty() || pem.size() > kMaxPemSize) return invalid("not a PEM private key");
  const BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Error{Errc::internal, "out of memory"};
  auto key = own(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr));
  if (!key) return invalid("not an unencrypted PEM private key");
  if (!is_p256(key.get())) return invalid("not an EC P-256 key");
  const PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_check(check.get()) != 1) return invalid("invalid EC P-256 key");
  auto x = coordinate(key.get(), OSSL_PKEY_PARAM_EC_PUB_X);
  auto y = coordinate(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
  if (!x || !y) return invalid("invalid EC P-256 key");
  return SigningKey(std::move(key), kid_of(*x, *y));
}

std::string SigningKey::private_pem() const {
  const OpensslErrorScope errors;
  const BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    std::abort();  // only fails when out of memory
  }
  char* data = nullptr;
  const long length = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &data);
  if (length <= 0 || data == nullptr) std::abort();
  std::string pem(data, static_cast<std::size_t>(length));
  return pem;
}

nlohmann::json SigningKey::public_jwk() const {
  const OpensslErrorScope errors;
  auto x = coordinate(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X);
  auto y = coordinate(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
  assert(x && y);
  return json{{"kty", "EC"},
              {"crv", "P-256"},
              {"x", crypto::base64url_encode(*x)},
              {"y", crypto::base64url_encode(*y)},
              {"kid", kid_},
              {"alg", "ES256"},
              {"use", "sig"}};
}

Result<std::string> SigningKey::sign(const nlohmann::json& claims) const {
  if (!claims.is_object()) return invalid("claims must be a JSON object");
  if (!integer_claim(claims, "exp")) return invalid("claims need an integer exp");
  std::string payload;
  try {
    payload = claims.dump();
  } catch (const json::exception&) {
    return invalid("claims are not valid UTF-8");
  }
  // Refuse what verify() would refuse, so a signed token is a usable one.
  if (!parse_object(payload)) return invalid("claims nest too deeply");
  const json header = {{"alg", "ES256"}, {"typ", "JWT"}, {"kid", kid_}};
  std::string token = crypto::base64url_encode(header.dump()) + "." +
                      crypto::base64url_encode(payload);
  const OpensslErrorScope errors;
  const auto signature = es256_sign(key_.get(), token);
  if (!signature) return Error{Errc::internal, "ES256 signing failed"};
  token += ".";
  token += crypto::base64url_encode(*signature);
  if (token.size() > kMaxTokenSize) return invalid("claims too large for a token");
  return token;
}

// ---- KeySet ----

Result<KeySet> KeySet::from_jwks(const nlohmann::json& jwks) {
  if (!jwks.is_object()) return invalid("JWKS: not a JSON object");
  const auto keys = jwks.find("keys");
  if (keys == jwks.end() || !keys->is_array()) return invalid("JWKS: no \"keys\" array");
  if (keys->size() > kMaxJwksKeys) return invalid("JWKS: too many keys");
  KeySet set;
  for (const auto& jwk : *keys) {
    if (auto added = set.add(jwk); !added) {
      return invalid(added.error().code == Errc::conflict ? "JWKS: duplicate kid"
                                                          : added.error().message);
    }
  }
  return set;
}

Status KeySet::add(const nlohmann::json& jwk) {
  const auto string_member = [&](const char* name) -> const std::string* {
    const auto it = jwk.find(name);
    return it != jwk.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
  };
  if (!jwk.is_object()) return invalid("JWK: not a JSON object");
  const std::string* kty = string_member("kty");
  const std::string* crv = string_member("crv");
  if (!kty || *kty != "EC" || !crv || *crv != "P-256") return invalid("JWK: not an EC P-256 key");
  if (jwk.contains("alg")) {
    const std::string* alg = string_member("alg");
    if (!alg || *alg != "ES256") return invalid("JWK: alg is not ES256");
  }
  if (jwk.contains("use")) {
    const std::string* use = string_member("use");
    if (!use || *use != "sig") return invalid("JWK: use is not sig");
  }
  if (jwk.contains("d")) return invalid("JWK: private key material in a public key set");
  const std::string* kid = string_member("kid");
  if (!kid || !valid_kid(*kid)) return invalid("JWK: missing or invalid kid");
  const std::string* x_text = string_member("x");
  const std::string* y_text = string_member("y");
  if (!x_text || !y_text) return invalid("JWK: missing coordinates");
  auto x = decode_canonical(*x_text);
  auto y = decode_canonical(*y_text);
  if (!x || !y || x->size() != kCoordinateSize || y->size() != kCoordinateSize) {
    return invalid("JWK: bad coordinates");
  }
  const OpensslErrorScope errors;
  auto key = public_key_from_xy(*x, *y);
  if (!key) return invalid("JWK: point is not on P-256");
  return insert(*kid, Entry{std::move(key), std::move(*x), std::move(*y)});
}

Status KeySet::add(const SigningKey& key) {
  const OpensslErrorScope errors;
  auto x = coordinate(key.key_.get(), OSSL_PKEY_PARAM_EC_PUB_X);
  auto y = coordinate(key.key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
  auto pub = x && y ? public_key_from_xy(*x, *y) : nullptr;
  if (!pub) return Error{Errc::internal, "cannot extract the public key"};
  return insert(key.kid(), Entry{std::move(pub), std::move(*x), std::move(*y)});
}

Status KeySet::insert(std::string kid, Entry entry) {
  const auto it = keys_.find(kid);
  if (it != keys_.end()) {
    if (it->second.x == entry.x && it->second.y == entry.y) return Ok{};
    return Error{Errc::conflict, "kid " + kid + " already names a different key"};
  }
  keys_.emplace(std::move(kid), std::move(entry));
  return Ok{};
}

nlohmann::json KeySet::to_jwks() const {
  json keys = json::array();
  for (const auto& [kid, entry] : keys_) {
    keys.push_back({{"kty", "EC"},
                    {"crv", "P-256"},
                    {"x", crypto::base64url_encode(entry.x)},
                    {"y", crypto::base64url_encode(entry.y)},
                    {"kid", kid},
                    {"alg", "ES256"},
                    {"use", "sig"}});
  }
  return json{{"keys", std::move(keys)}};
}

bool KeySet::contains(std::string_view kid) const { return keys_.find(kid) != keys_.end(); }

// ---- verify ----

Result<nlohmann::json> verify(std::string_view token, const KeySet& keys,
                              std::int64_t now_epoch_seconds, std::int64_t leeway_seconds) {
  if (token.empty() || token.size() > kMaxTokenSize) return unauthorized("malformed token");
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return unauthorized("malformed token");
  }
  const std::string_view signing_input = token.substr(0, dot2);
  const auto header_text = decode_canonical(token.substr(0, dot1));
  const auto payload_text = decode_canonical(token.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto signature = decode_canonical(token.substr(dot2 + 1));
  if (!header_text || !payload_text || !signature || signature->size() != kSignatureSize) {
    return unauthorized("malformed token");
  }

  const auto header = parse_object(*header_text);
  if (!header) return unauthorized("malformed token");
  const auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string() || alg->get_ref<const std::string&>() != "ES256") {
    return unauthorized("unsupported algorithm");
  }
  if (const auto typ = header->find("typ");
      typ != header->end() && (!typ->is_string() || typ->get_ref<const std::string&>() != "JWT")) {
    return unauthorized("malformed token");
  }
  // No extension is understood, so any critical one must be refused (RFC 7515, 4.1.11).
  if (header->contains("crit")) return unauthorized("malformed token");
  const auto kid = header->find("kid");
  if (kid == header->end() || !kid->is_string()) return unauthorized("unknown key");
  const auto entry = keys.keys_.find(kid->get_ref<const std::string&>());
  if (entry == keys.keys_.end()) return unauthorized("unknown key");

  {
    const OpensslErrorScope errors;
    if (!es256_verify(entry->second.key.get(), signing_input, *signature)) {
      return unauthorized("bad signature");
    }
  }

  auto claims = parse_object(*payload_text);
  if (!claims) return unauthorized("malformed token");
  const std::int64_t leeway = leeway_seconds > 0 ? leeway_seconds : 0;
  const auto exp = integer_claim(*claims, "exp");
  if (!exp) return unauthorized("malformed token");
  if (saturating_add(*exp, leeway) <= now_epoch_seconds) return unauthorized("token expired");
  const std::int64_t latest = saturating_add(now_epoch_seconds, leeway);
  for (const char* name : {"nbf", "iat"}) {
    if (!claims->contains(name)) continue;
    const auto when = integer_claim(*claims, name);
    if (!when) return unauthorized("malformed token");
    if (*when > latest) return unauthorized("token not yet valid");
  }
  return std::move(*claims);
}

// ---- KeyRing ----

struct KeyRing::State {
  std::filesystem::path dir;
  std::mutex change_mu;  // serialises rotate/retire, including their file I/O
  mutable std::shared_mutex mu;  // guards the members below
  std::map<std::string, SigningKey, std::less<>> keys;
  std::string current;
  std::shared_ptr<const KeySet> public_keys;

  std::filesystem::path pem_path(std::string_view kid) const {
    return dir / (std::string(kid) + ".pem");
  }
  std::filesystem::path current_path() const { return dir / "current"; }

  // Caller holds `mu` exclusively (or is the only owner).
  Status rebuild_public_keys() {
    auto set = std::make_shared<KeySet>();
    for (const auto& [kid, key] : keys) {
      if (auto added = set->add(key); !added) return added;
    }
    public_keys = std::move(set);
    return Ok{};
  }
};

KeyRing::KeyRing(std::unique_ptr<State> state) : state_(std::move(state)) {}
KeyRing::KeyRing(KeyRing&&) noexcept = default;
KeyRing& KeyRing::operator=(KeyRing&&) noexcept = default;
KeyRing::~KeyRing() = default;

Result<KeyRing> KeyRing::open(const std::filesystem::path& dir) {
  auto state = std::make_unique<State>();
  state->dir = dir;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    if (!std::filesystem::create_directories(dir, ec) || ec) {
      return Error{Errc::io, "cannot create " + dir.string() + ": " + ec.message()};
    }
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
    if (ec) return Error{Errc::io, "cannot restrict " + dir.string() + ": " + ec.message()};
  } else if (!std::filesystem::is_directory(dir, ec)) {
    return Error{Errc::io, dir.string() + " is not a directory"};
  }

  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return Error{Errc::io, "cannot list " + dir.string() + ": " + ec.message()};
  std::optional<std::filesystem::file_time_type> newest_time;
  std::string newest;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return Error{Errc::io, "cannot list " + dir.string() + ": " + ec.message()};
    const auto& path = it->path();
    const std::string name = path.filename().string();
    // Dot files are leftovers of interrupted atomic writes.
    if (name.empty() || name.front() == '.' || path.extension() != ".pem") continue;
    auto pem = read_small_file(path);
    if (!pem) return pem.error();
    auto key = SigningKey::from_pem(*pem);
    if (!key) return Error{Errc::invalid_input, path.string() + ": " + key.error().message};
    if (key->kid() != path.stem().string()) {
      return Error{Errc::invalid_input, path.string() + ": file name is not the key's kid " +
                                            key->kid()};
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      spdlog::warn("{} is readable by other users; it should be mode 0600", path.string());
    }
    std::string kid = key->kid();
    const auto mtime = std::filesystem::last_write_time(path, ec);
    if (!ec && (!newest_time || mtime > *newest_time)) {
      newest_time = mtime;
      newest = kid;
    }
    state->keys.emplace(std::move(kid), std::move(*key));
  }

  if (std::filesystem::exists(state->current_path(), ec)) {
    auto text = read_small_file(state->current_path());
    if (!text) return text.error();
    std::string kid = std::move(*text);
    while (!kid.empty() && (kid.back() == '\n' || kid.back() == '\r' || kid.back() == ' ')) {
      kid.pop_back();
    }
    if (state->keys.find(kid) == state->keys.end()) {
      return Error{Errc::invalid_input, state->current_path().string() + " names key \"" + kid +
                                            "\", which is not in " + dir.string()};
    }
    state->current = std::move(kid);
  } else {
    if (state->keys.empty()) {
      auto key = SigningKey::generate();
      if (auto written = write_file_atomic(state->pem_path(key.kid()), key.private_pem());
          !written) {
        return written.error();
      }
      newest = key.kid();
      state->keys.emplace(newest, std::move(key));
    }
    // Keys without a `current` file: the first run stopped between the two
    // writes, or keys were placed by hand. The newest one signs.
    if (auto written = write_file_atomic(state->current_path(), newest + "\n"); !written) {
      return written.error();
    }
    state->current = newest;
  }
  if (auto built = state->rebuild_public_keys(); !built) return built.error();
  return KeyRing(std::move(state));
}

Result<std::string> KeyRing::rotate() {
  const std::lock_guard change(state_->change_mu);
  auto key = SigningKey::generate();
  const std::string kid = key.kid();
  if (auto written = write_file_atomic(state_->pem_path(kid), key.private_pem()); !written) {
    return written.error();
  }
  if (auto written = write_file_atomic(state_->current_path(), kid + "\n"); !written) {
    return written.error();  // the new key stays on disk, unused, until rotated past
  }
  const std::unique_lock lock(state_->mu);
  state_->keys.emplace(kid, std::move(key));
  state_->current = kid;
  if (auto built = state_->rebuild_public_keys(); !built) return built.error();
  return kid;
}

Status KeyRing::retire(std::string_view kid) {
  const std::lock_guard change(state_->change_mu);
  {
    const std::shared_lock lock(state_->mu);
    if (kid == state_->current) return Error{Errc::conflict, "cannot retire the current key"};
    if (state_->keys.find(kid) == state_->keys.end()) {
      return Error{Errc::not_found, "no key " + std::string(kid)};
    }
  }
  std::error_code ec;
  std::filesystem::remove(state_->pem_path(kid), ec);
  if (ec) return Error{Errc::io, "cannot remove " + state_->pem_path(kid).string() + ": " + ec.message()};
  const std::unique_lock lock(state_->mu);
  state_->keys.erase(state_->keys.find(kid));
  return state_->rebuild_public_keys();
}

std::string KeyRing::current_kid() const {
  const std::shared_lock lock(state_->mu);
  return state_->current;
}

Result<std::string> KeyRing::sign(const nlohmann::json& claims) const {
  std::optional<SigningKey> key;
  {
    const std::shared_lock lock(state_->mu);
    key = state_->keys.at(state_->current);
  }
  return key->sign(claims);
}

Result<nlohmann::json> KeyRing::verify(std::string_view token, std::int64_t now_epoch_seconds,
                                       std::int64_t leeway_seconds) const {
  std::shared_ptr<const KeySet> keys;
  {
    const std::shared_lock lock(state_->mu);
    keys = state_->public_keys;
  }
  return jwt::verify(token, *keys, now_epoch_seconds, leeway_seconds);
}

KeySet KeyRing::public_keys() const {
  const std::shared_lock lock(state_->mu);
  return *state_->public_keys;
}

}  // namespace paddock::jwt
