#include "common/jwt.hpp"

#include "common/crypto.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace paddock::jwt {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::int64_t kNow = 1'700'000'000;

json claims_until(std::int64_t exp) {
  return json{{"iss", "https://paddock.example:8443"},
              {"aud", "host-1"},
              {"sub", "AK123"},
              {"iat", kNow},
              {"exp", exp},
              {"jti", "j-1"},
              {"op", "logs"},
              {"params", {{"follow", true}, {"tail", 100}}}};
}

std::string b64(std::string_view s) { return crypto::base64url_encode(s); }

std::string unb64(std::string_view s) {
  auto out = crypto::base64url_decode(s);
  EXPECT_TRUE(out.has_value()) << s;
  return out.value_or("");
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::vector<std::string> parts(const std::string& token) {
  std::vector<std::string> out;
  std::stringstream in(token);
  for (std::string part; std::getline(in, part, '.');) out.push_back(part);
  return out;
}

// ---- an independent ES256 implementation for building hostile tokens ----

struct Pkey {
  EVP_PKEY* p = nullptr;
  explicit Pkey(EVP_PKEY* k) : p(k) {}
  ~Pkey() { EVP_PKEY_free(p); }
  Pkey(const Pkey&) = delete;
  Pkey& operator=(const Pkey&) = delete;
};

EVP_PKEY* load_private(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return key;
}

std::string der_to_raw(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  EXPECT_NE(sig, nullptr);
  if (!sig) return {};
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  std::string raw(64, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  BN_bn2binpad(r, out, 32);
  BN_bn2binpad(s, out + 32, 32);
  ECDSA_SIG_free(sig);
  return raw;
}

std::string raw_to_der(const std::string& raw) {
  const auto* in = reinterpret_cast<const unsigned char*>(raw.data());
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(in, 32, nullptr), BN_bin2bn(in + 32, 32, nullptr));
  const int n = i2d_ECDSA_SIG(sig, nullptr);
  std::string der(static_cast<std::size_t>(n), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_ECDSA_SIG(sig, &out);
  ECDSA_SIG_free(sig);
  return der;
}

std::string es256_raw(const std::string& pem, const std::string& input) {
  Pkey key(load_private(pem));
  EXPECT_NE(key.p, nullptr);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  std::size_t n = 0;
  EXPECT_EQ(EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key.p), 1);
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  EXPECT_EQ(EVP_DigestSign(md, nullptr, &n, data, input.size()), 1);
  std::string der(n, '\0');
  EXPECT_EQ(EVP_DigestSign(md, reinterpret_cast<unsigned char*>(der.data()), &n, data,
                           input.size()),
            1);
  der.resize(n);
  EVP_MD_CTX_free(md);
  return der_to_raw(der);
}

// A token with exactly these header and payload bytes, validly signed.
std::string sign_raw(const SigningKey& key, const std::string& header, const std::string& payload) {
  const std::string input = b64(header) + "." + b64(payload);
  return input + "." + b64(es256_raw(key.private_pem(), input));
}

std::string header_for(const SigningKey& key) {
  return json{{"alg", "ES256"}, {"typ", "JWT"}, {"kid", key.kid()}}.dump();
}

void expect_refused(const Result<json>& result, std::string_view message = {}) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::unauthorized);
  if (!message.empty()) {
    EXPECT_EQ(result.error().message, message);
  }
}

struct Fixture : ::testing::Test {
  SigningKey key = SigningKey::generate();
  SigningKey other = SigningKey::generate();
  KeySet keys;
  void SetUp() override { ASSERT_TRUE(keys.add(key).ok()); }
  std::string good() { return key.sign(claims_until(kNow + 60)).value(); }
};

// ---- SigningKey ----

TEST(JwtSigningKey, PemRoundTripKeepsKidAndJwk) {
  const auto key = SigningKey::generate();
  const auto pem = key.private_pem();
  EXPECT_NE(pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  auto loaded = SigningKey::from_pem(pem);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->kid(), key.kid());
  EXPECT_EQ(loaded->public_jwk(), key.public_jwk());
  EXPECT_NE(SigningKey::generate().kid(), key.kid());
}

TEST(JwtSigningKey, KidIsHashOfSubjectPublicKeyInfo) {
  const auto key = SigningKey::generate();
  Pkey pkey(load_private(key.private_pem()));
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(pkey.p, &der);
  ASSERT_GT(n, 0);
  const std::string spki(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  EXPECT_EQ(key.kid(), b64(crypto::sha256(spki).substr(0, 12)));
  EXPECT_EQ(key.kid().size(), 16u);
}

TEST(JwtSigningKey, PublicJwkHasExactlyTheStandardMembers) {
  const auto jwk = SigningKey::generate().public_jwk();
  EXPECT_EQ(jwk.size(), 7u);
  EXPECT_EQ(jwk.at("kty"), "EC");
  EXPECT_EQ(jwk.at("crv"), "P-256");
  EXPECT_EQ(jwk.at("alg"), "ES256");
  EXPECT_EQ(jwk.at("use"), "sig");
  EXPECT_EQ(unb64(jwk.at("x").get<std::string>()).size(), 32u);
  EXPECT_EQ(unb64(jwk.at("y").get<std::string>()).size(), 32u);
  EXPECT_FALSE(jwk.contains("d"));
}

TEST(JwtSigningKey, FromPemRefusesOtherKeys) {
  EXPECT_FALSE(SigningKey::from_pem("").ok());
  EXPECT_FALSE(SigningKey::from_pem("not a pem").ok());
  EXPECT_FALSE(SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").ok());

  // P-384 is EC but not ES256.
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* raw = nullptr;
  ASSERT_EQ(EVP_PKEY_keygen_init(ctx), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_group_name(ctx, "P-384"), 1);
  ASSERT_EQ(EVP_PKEY_generate(ctx, &raw), 1);
  EVP_PKEY_CTX_free(ctx);
  Pkey p384(raw);
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio, p384.p, nullptr, nullptr, 0, nullptr, nullptr), 1);
  char* data = nullptr;
  const long n = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data);
  const std::string p384_pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  auto refused = SigningKey::from_pem(p384_pem);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message, "not an EC P-256 key");

  // An encrypted key is refused without prompting for a passphrase.
  const auto key = SigningKey::generate();
  Pkey p256(load_private(key.private_pem()));
  bio = BIO_new(BIO_s_mem());
  char pass[] = "secret";
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio, p256.p, EVP_aes_256_cbc(), nullptr, 0, nullptr, pass), 1);
  const long m = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data);
  const std::string encrypted(data, static_cast<std::size_t>(m));
  BIO_free(bio);
  EXPECT_FALSE(SigningKey::from_pem(encrypted).ok());

  // A public key is not a signing key.
  bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio, p256.p), 1);
  const long k = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data);
  const std::string pub(data, static_cast<std::size_t>(k));
  BIO_free(bio);
  EXPECT_FALSE(SigningKey::from_pem(pub).ok());
}

TEST(JwtSigningKey, SignRefusesClaimsVerifyWouldRefuse) {
  const auto key = SigningKey::generate();
  EXPECT_EQ(key.sign(json::array()).error().code, Errc::invalid_input);
  EXPECT_FALSE(key.sign(json{{"aud", "h"}}).ok());                 // no exp
  EXPECT_FALSE(key.sign(json{{"exp", 1.5}}).ok());                 // not an integer
  EXPECT_FALSE(key.sign(json{{"exp", "1700000000"}}).ok());
  EXPECT_FALSE(key.sign(json{{"exp", kNow}, {"x", "\xff\xfe"}}).ok());  // not UTF-8
  EXPECT_FALSE(key.sign(json{{"exp", kNow}, {"x", std::string(9000, 'a')}}).ok());
  json deep = 1;
  for (int i = 0; i < 40; ++i) deep = json::array({deep});
  EXPECT_FALSE(key.sign(json{{"exp", kNow}, {"x", deep}}).ok());
}

// ---- verify ----

using JwtVerify = Fixture;

TEST_F(JwtVerify, RoundTrip) {
  const auto token = good();
  const auto p = parts(token);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(json::parse(unb64(p[0])),
            (json{{"alg", "ES256"}, {"typ", "JWT"}, {"kid", key.kid()}}));
  EXPECT_EQ(unb64(p[2]).size(), 64u);  // raw R || S, not DER
  auto claims = verify(token, keys, kNow);
  ASSERT_TRUE(claims.ok()) << claims.error().message;
  EXPECT_EQ(*claims, claims_until(kNow + 60));
}

TEST_F(JwtVerify, RejectsTamperedPayload) {
  auto p = parts(good());
  auto claims = claims_until(kNow + 60);
  claims["aud"] = "host-2";
  expect_refused(verify(p[0] + "." + b64(claims.dump()) + "." + p[2], keys, kNow), "bad signature");
  // Same claims, different serialisation: the signature covers bytes.
  claims["aud"] = "host-1";
  expect_refused(verify(p[0] + "." + b64(claims.dump(1)) + "." + p[2], keys, kNow), "bad signature");
}

TEST_F(JwtVerify, RejectsAlgNone) {
  const auto p = parts(good());
  const auto none = b64(json{{"alg", "none"}, {"typ", "JWT"}, {"kid", key.kid()}}.dump());
  expect_refused(verify(none + "." + p[1] + ".", keys, kNow));
  expect_refused(verify(none + "." + p[1] + "." + p[2], keys, kNow), "unsupported algorithm");
  // Even validly signed, "none" (or a missing alg) is not ES256.
  expect_refused(verify(sign_raw(key, json{{"alg", "none"}, {"kid", key.kid()}}.dump(), unb64(p[1])), keys, kNow),
                 "unsupported algorithm");
  expect_refused(verify(sign_raw(key, json{{"kid", key.kid()}}.dump(), unb64(p[1])), keys, kNow),
                 "unsupported algorithm");
  expect_refused(verify(sign_raw(key, json{{"alg", "es256"}, {"kid", key.kid()}}.dump(), unb64(p[1])), keys, kNow),
                 "unsupported algorithm");
}

TEST_F(JwtVerify, RejectsHs256KeyedWithThePublicKey) {
  // The classic confusion: HMAC with the verifier's public key as secret.
  const auto p = parts(good());
  for (const std::string alg : {"HS256", "HS512", "RS256", "ES384", "EdDSA"}) {
    const auto header = b64(json{{"alg", alg}, {"typ", "JWT"}, {"kid", key.kid()}}.dump());
    const auto input = header + "." + p[1];
    const auto secret = keys.to_jwks().dump();
    const auto mac = crypto::hmac_sha256(secret, input);
    expect_refused(verify(input + "." + b64(mac), keys, kNow));
    expect_refused(verify(input + "." + b64(mac + mac), keys, kNow), "unsupported algorithm");
    expect_refused(verify(input + "." + p[2], keys, kNow), "unsupported algorithm");
  }
}

TEST_F(JwtVerify, RejectsEveryTruncation) {
  const auto token = good();
  for (std::size_t n = 0; n < token.size(); ++n) {
    expect_refused(verify(token.substr(0, n), keys, kNow));
  }
  for (std::size_t n = 1; n <= token.size(); ++n) {
    expect_refused(verify(token.substr(n), keys, kNow));
  }
}

TEST_F(JwtVerify, RejectsExtraParts) {
  const auto token = good();
  expect_refused(verify(token + ".", keys, kNow), "malformed token");
  expect_refused(verify(token + ".e30", keys, kNow), "malformed token");
  expect_refused(verify("e30." + token, keys, kNow), "malformed token");
  const auto p = parts(token);
  expect_refused(verify(p[0] + ".." + p[1] + "." + p[2], keys, kNow), "malformed token");
  expect_refused(verify(p[0] + "." + p[1], keys, kNow), "malformed token");
}

TEST_F(JwtVerify, RejectsGarbageAndNonCanonicalBase64) {
  const auto token = good();
  const auto p = parts(token);
  for (const std::string& bad : std::vector<std::string>{
           "!!!.???.***", "..", "a.b.c", " " + token, token + " ", token + "\n",
                                p[0] + "=." + p[1] + "." + p[2],            // padding
                                p[0] + "." + p[1] + "." + p[2] + "==",
                                p[0] + "." + p[1] + "+." + p[2],             // standard alphabet
                                p[0] + "." + p[1] + "." + p[2].substr(0, 40) + "/" + p[2].substr(41),
                                std::string("\0", 1) + token}) {
    expect_refused(verify(bad, keys, kNow));
  }
  // The signature's last character carries 4 unused bits; a spelling with
  // them set decodes to the same bytes but is not the canonical token.
  std::string sig = p[2];
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const auto last = alphabet.find(sig.back());
  ASSERT_EQ(last % 4, 0u);
  sig.back() = alphabet[last + 1];
  ASSERT_EQ(crypto::base64url_decode(sig), crypto::base64url_decode(p[2]));
  expect_refused(verify(p[0] + "." + p[1] + "." + sig, keys, kNow), "malformed token");
}

TEST_F(JwtVerify, RejectsOtherKeys) {
  // Signed by a key the set does not have.
  expect_refused(verify(other.sign(claims_until(kNow + 60)).value(), keys, kNow), "unknown key");
  // Signed by another key while claiming our kid.
  const auto forged = sign_raw(other, header_for(key), claims_until(kNow + 60).dump());
  expect_refused(verify(forged, keys, kNow), "bad signature");
  // An empty set knows nothing.
  expect_refused(verify(good(), KeySet{}, kNow), "unknown key");
}

TEST_F(JwtVerify, RejectsMissingOrOddKid) {
  const auto payload = claims_until(kNow + 60).dump();
  expect_refused(verify(sign_raw(key, json{{"alg", "ES256"}}.dump(), payload), keys, kNow), "unknown key");
  expect_refused(verify(sign_raw(key, json{{"alg", "ES256"}, {"kid", nullptr}}.dump(), payload), keys, kNow),
                 "unknown key");
  expect_refused(verify(sign_raw(key, json{{"alg", "ES256"}, {"kid", json::array({key.kid()})}}.dump(), payload),
                        keys, kNow),
                 "unknown key");
  // Only kid selects a key: an embedded "jwk" is not trusted.
  expect_refused(verify(sign_raw(other, json{{"alg", "ES256"}, {"jwk", other.public_jwk()}}.dump(), payload),
                        keys, kNow),
                 "unknown key");
}

TEST_F(JwtVerify, RejectsHeaderOddities) {
  const auto payload = claims_until(kNow + 60).dump();
  const auto kid = json(key.kid()).dump();
  // Duplicate members: another parser might read the first "alg".
  expect_refused(verify(sign_raw(key, R"({"alg":"none","alg":"ES256","kid":)" + kid + "}", payload), keys, kNow),
                 "malformed token");
  expect_refused(verify(sign_raw(key, json{{"alg", "ES256"}, {"kid", key.kid()}, {"crit", {"exp"}}}.dump(), payload),
                        keys, kNow),
                 "malformed token");
  expect_refused(verify(sign_raw(key, json{{"alg", "ES256"}, {"kid", key.kid()}, {"typ", "JWE"}}.dump(), payload),
                        keys, kNow),
                 "malformed token");
  expect_refused(verify(sign_raw(key, "[]", payload), keys, kNow), "malformed token");
  expect_refused(verify(sign_raw(key, "{", payload), keys, kNow), "malformed token");
  expect_refused(verify(sign_raw(key, std::string(3000, '['), payload), keys, kNow), "malformed token");
  // Without typ, and with extra harmless members, it is fine.
  EXPECT_TRUE(verify(sign_raw(key, json{{"alg", "ES256"}, {"kid", key.kid()}, {"x", 1}}.dump(), payload), keys, kNow)
                  .ok());
}

TEST_F(JwtVerify, RejectsClaimsThatAreNotAnObjectWithIntegerExp) {
  const auto header = header_for(key);
  for (const std::string payload :
       {"[]", "null", "1", "\"s\"", "", "{", R"({"aud":"h"})", R"({"exp":"1700000060"})",
        R"({"exp":1700000060.0})", R"({"exp":1.7e9})", R"({"exp":null})", R"({"exp":1700000060,"exp":1})",
        R"({"exp":1700000060,"nbf":"0"})", R"({"exp":1700000060,"iat":1.5})"}) {
    expect_refused(verify(sign_raw(key, header, payload), keys, kNow), "malformed token");
  }
  std::string deep = R"({"exp":1700000060,"p":)" + std::string(100, '[') + std::string(100, ']') + "}";
  expect_refused(verify(sign_raw(key, header, deep), keys, kNow), "malformed token");
  // Invalid UTF-8 in a string.
  expect_refused(verify(sign_raw(key, header, "{\"exp\":1700000060,\"s\":\"\xc3\x28\"}"), keys, kNow),
                 "malformed token");
  // A minimal valid payload.
  EXPECT_TRUE(verify(sign_raw(key, header, R"({"exp":1700000060})"), keys, kNow).ok());
  // An exp past int64 means "never" and must not overflow.
  EXPECT_TRUE(verify(sign_raw(key, header, R"({"exp":18446744073709551615})"), keys, kNow).ok());
}

TEST_F(JwtVerify, RejectsExpiredTokens) {
  expect_refused(verify(key.sign(claims_until(kNow)).value(), keys, kNow), "token expired");
  expect_refused(verify(key.sign(claims_until(kNow - 1)).value(), keys, kNow), "token expired");
  expect_refused(verify(key.sign(claims_until(-1)).value(), keys, kNow), "token expired");
  EXPECT_TRUE(verify(key.sign(claims_until(kNow + 1)).value(), keys, kNow).ok());
  // Leeway is explicit, and negative leeway means none.
  const auto recent = key.sign(claims_until(kNow - 3)).value();
  EXPECT_TRUE(verify(recent, keys, kNow, 5).ok());
  expect_refused(verify(recent, keys, kNow, 3), "token expired");
  expect_refused(verify(recent, keys, kNow, -100), "token expired");
  expect_refused(verify(recent, keys, std::numeric_limits<std::int64_t>::max(),
                        std::numeric_limits<std::int64_t>::max()),
                 "token expired");
}

TEST_F(JwtVerify, RejectsTokensNotYetValid) {
  auto claims = claims_until(kNow + 60);
  claims["nbf"] = kNow + 10;
  const auto early = key.sign(claims).value();
  expect_refused(verify(early, keys, kNow), "token not yet valid");
  EXPECT_TRUE(verify(early, keys, kNow, 10).ok());
  EXPECT_TRUE(verify(early, keys, kNow + 10).ok());
  claims.erase("nbf");
  claims["iat"] = kNow + 5;
  expect_refused(verify(key.sign(claims).value(), keys, kNow), "token not yet valid");
  EXPECT_TRUE(verify(key.sign(claims).value(), keys, kNow, 5).ok());
}

TEST_F(JwtVerify, RejectsOversizedTokens) {
  const auto token = good();
  const auto p = parts(token);
  std::string big = p[0] + "." + p[1] + std::string(kMaxTokenSize, 'A') + "." + p[2];
  expect_refused(verify(big, keys, kNow), "malformed token");
  expect_refused(verify(std::string(kMaxTokenSize + 1, 'A'), keys, kNow), "malformed token");
}

// ECDSA signatures are malleable: (r, n - s) verifies too, here and in every
// ES256 library. Single-use checks must key on "jti", never on token bytes.
TEST_F(JwtVerify, MalleatedSignatureStillVerifiesSoReplayChecksUseJti) {
  const auto p = parts(good());
  const std::string raw = unb64(p[2]);
  BIGNUM* n = nullptr;
  ASSERT_GT(BN_hex2bn(&n, "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"), 0);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  ASSERT_EQ(BN_sub(s, n, s), 1);
  std::string flipped = raw;
  BN_bn2binpad(s, reinterpret_cast<unsigned char*>(flipped.data()) + 32, 32);
  BN_free(s);
  BN_free(n);
  const auto twin = p[0] + "." + p[1] + "." + b64(flipped);
  ASSERT_NE(twin, good());
  auto claims = verify(twin, keys, kNow);
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->at("jti"), "j-1");
}

TEST_F(JwtVerify, RandomAndMutatedInputNeverCrashesNorVerifies) {
  std::mt19937 rng(20240611);
  const auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\"\\\n";
  const std::string token = good();
  const auto p = parts(token);
  const std::vector<std::string> pieces = {p[0], p[1], p[2], "", "e30", "bnVsbA",
                                           b64(R"({"alg":"ES256","kid":")" + key.kid() + "\"}"),
                                           parts(other.sign(claims_until(kNow + 60)).value())[2]};
  int verified = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string input;
    switch (round % 4) {
      case 0: {  // random characters, mostly from the token alphabet
        const std::size_t length = pick(400);
        for (std::size_t i = 0; i < length; ++i) {
          input.push_back(pick(8) == 0 ? static_cast<char>(pick(256)) : alphabet[pick(alphabet.size())]);
        }
        break;
      }
      case 1: {  // point mutations of a valid token
        input = token;
        for (std::size_t edits = 1 + pick(3); edits > 0; --edits) {
          const std::size_t at = pick(input.size());
          switch (pick(3)) {
            case 0: input[at] = alphabet[pick(64)]; break;
            case 1: input.erase(at, 1 + pick(4)); break;
            default: input.insert(at, 1, alphabet[pick(alphabet.size())]); break;
          }
        }
        break;
      }
      case 2: {  // parts spliced together
        const std::size_t count = 1 + pick(4);
        for (std::size_t i = 0; i < count; ++i) {
          if (i) input.push_back('.');
          input += pieces[pick(pieces.size())];
        }
        break;
      }
      default: {  // structurally valid, random header/claims JSON, random signature
        const json header = pick(2) ? json{{"alg", "ES256"}, {"kid", key.kid()}}
                                    : json{{"alg", pick(2) ? "none" : "HS256"}, {"kid", key.kid()}};
        json claims = claims_until(static_cast<std::int64_t>(kNow) + static_cast<std::int64_t>(pick(100)) - 50);
        claims["r"] = pick(1000000);
        input = b64(header.dump()) + "." + b64(claims.dump()) + "." + b64(crypto::random_bytes(pick(2) ? 64u : pick(100)));
        break;
      }
    }
    if (input == token) continue;
    auto result = verify(input, keys, kNow);
    if (result.ok()) {
      ++verified;
      ADD_FAILURE() << "verified: " << input;
    } else {
      EXPECT_EQ(result.error().code, Errc::unauthorized);
    }
  }
  EXPECT_EQ(verified, 0);
}

// ---- interoperability with the openssl command line ----

struct JwtOpensslCli : Fixture {
  fs::path dir;
  void SetUp() override {
    Fixture::SetUp();
    ASSERT_EQ(std::system("command -v openssl >/dev/null 2>&1"), 0) << "the openssl command (scripts/setup installs it)";
    char tmpl[] = "/tmp/paddock-jwt-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
  void write(const std::string& name, const std::string& data) {
    std::ofstream(dir / name, std::ios::binary) << data;
  }
  std::string read(const std::string& name) {
    std::ifstream in(dir / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  int run(const std::string& command) {
    return std::system(("cd '" + dir.string() + "' && " + command + " >out.txt 2>&1").c_str());
  }
};

TEST_F(JwtOpensslCli, CliVerifiesOurSignature) {
  const auto p = parts(good());
  write("key.pem", key.private_pem());
  write("input", p[0] + "." + p[1]);
  write("sig.der", raw_to_der(unb64(p[2])));
  ASSERT_EQ(run("openssl pkey -in key.pem -pubout -out pub.pem"), 0) << read("out.txt");
  ASSERT_EQ(run("openssl dgst -sha256 -verify pub.pem -signature sig.der input"), 0) << read("out.txt");
  EXPECT_NE(read("out.txt").find("Verified OK"), std::string::npos);
  write("input", p[0] + "." + p[1] + "x");
  EXPECT_NE(run("openssl dgst -sha256 -verify pub.pem -signature sig.der input"), 0);
}

TEST_F(JwtOpensslCli, WeVerifyCliKeysAndSignatures) {
  ASSERT_EQ(run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out cli.pem"), 0)
      << read("out.txt");
  auto cli_key = SigningKey::from_pem(read("cli.pem"));
  ASSERT_TRUE(cli_key.ok()) << cli_key.error().message;
  // Our kid is the hash of the DER SubjectPublicKeyInfo that openssl writes.
  ASSERT_EQ(run("openssl pkey -in cli.pem -pubout -outform DER -out pub.der"), 0);
  EXPECT_EQ(cli_key->kid(), b64(crypto::sha256(read("pub.der")).substr(0, 12)));

  const auto input = b64(header_for(*cli_key)) + "." + b64(claims_until(kNow + 60).dump());
  write("input", input);
  ASSERT_EQ(run("openssl dgst -sha256 -sign cli.pem -out sig.der input"), 0) << read("out.txt");
  const auto token = input + "." + b64(der_to_raw(read("sig.der")));
  // Verified through a JWKS, as an agent would.
  KeySet set;
  ASSERT_TRUE(set.add(cli_key->public_jwk()).ok());
  auto claims = verify(token, set, kNow);
  ASSERT_TRUE(claims.ok()) << claims.error().message;
  EXPECT_EQ(claims->at("aud"), "host-1");
  expect_refused(verify(token, keys, kNow), "unknown key");
}

// ---- KeySet ----

// RFC 7515, appendix A.3: the ES256 example key.
json rfc7515_jwk() {
  return json{{"kty", "EC"},
              {"crv", "P-256"},
              {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
              {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
              {"kid", "rfc7515-a3"}};
}

TEST(KeySet, JwksRoundTripThroughText) {
  const auto a = SigningKey::generate();
  const auto b = SigningKey::generate();
  KeySet set;
  ASSERT_TRUE(set.add(a).ok());
  ASSERT_TRUE(set.add(b.public_jwk()).ok());
  ASSERT_TRUE(set.add(a).ok());  // same key again: no-op
  EXPECT_EQ(set.size(), 2u);
  const std::string text = set.to_jwks().dump();
  auto parsed = KeySet::from_jwks(json::parse(text));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->to_jwks(), set.to_jwks());
  EXPECT_TRUE(parsed->contains(a.kid()));
  EXPECT_TRUE(parsed->contains(b.kid()));
  for (const auto* k : {&a, &b}) {
    auto claims = verify(k->sign(claims_until(kNow + 60)).value(), *parsed, kNow);
    EXPECT_TRUE(claims.ok());
  }
  const auto published = parsed->to_jwks();
  for (const auto& jwk : published.at("keys")) {
    EXPECT_EQ(jwk, jwk.at("kid") == a.kid() ? a.public_jwk() : b.public_jwk());
  }
  EXPECT_EQ(KeySet{}.to_jwks(), json::parse(R"({"keys":[]})"));
}

TEST(KeySet, AcceptsTheRfc7515ExampleKey) {
  auto set = KeySet::from_jwks(json{{"keys", {rfc7515_jwk()}}});
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_TRUE(set->contains("rfc7515-a3"));
  const auto out = set->to_jwks().at("keys").at(0);
  EXPECT_EQ(out.at("x"), rfc7515_jwk().at("x"));
  EXPECT_EQ(out.at("alg"), "ES256");
}

TEST(KeySet, RefusesAnythingButEs256PublicKeys) {
  const auto refuse = [](const json& jwk, std::string_view why) {
    auto set = KeySet::from_jwks(json{{"keys", {jwk}}});
    ASSERT_FALSE(set.ok()) << why;
    EXPECT_EQ(set.error().code, Errc::invalid_input);
    KeySet direct;
    EXPECT_FALSE(direct.add(jwk).ok()) << why;
    EXPECT_TRUE(direct.empty());
  };
  const auto with = [](const char* member, json value) {
    auto jwk = rfc7515_jwk();
    if (value.is_discarded()) jwk.erase(member);
    else jwk[member] = std::move(value);
    return jwk;
  };
  const json gone(json::value_t::discarded);
  refuse(json::array(), "not an object");
  refuse(with("kty", "RSA"), "RSA");
  refuse(with("kty", "oct"), "symmetric");
  refuse(with("kty", gone), "no kty");
  refuse(with("crv", "P-384"), "P-384");
  refuse(with("crv", "secp256k1"), "secp256k1");
  refuse(with("crv", gone), "no crv");
  refuse(with("alg", "ES384"), "ES384");
  refuse(with("alg", "none"), "none");
  refuse(with("alg", "HS256"), "HS256");
  refuse(with("alg", 7), "numeric alg");
  refuse(with("use", "enc"), "encryption key");
  refuse(with("d", "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"), "private key");
  refuse(with("kid", gone), "no kid");
  refuse(with("kid", ""), "empty kid");
  refuse(with("kid", 12), "numeric kid");
  refuse(with("kid", "has space"), "kid with space");
  refuse(with("kid", std::string(200, 'k')), "long kid");
  refuse(with("x", gone), "no x");
  refuse(with("y", 5), "numeric y");
  refuse(with("x", b64(std::string(31, 'a'))), "short x");
  refuse(with("x", b64(std::string(33, 'a'))), "long x");
  refuse(with("x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU="), "padded x");
  refuse(with("x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEV"), "non-canonical x");
  refuse(with("x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE!"), "bad character");
  // Valid encodings of points that are not on the curve.
  refuse(with("y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a4"), "y off by one");
  auto origin = with("x", b64(std::string(32, '\0')));
  origin["y"] = b64(std::string(32, '\0'));
  refuse(origin, "origin");
  const std::string prime = from_hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
  refuse(with("x", b64(prime)), "x equal to the field prime");

  EXPECT_FALSE(KeySet::from_jwks(json::array()).ok());
  EXPECT_FALSE(KeySet::from_jwks(json::object()).ok());
  EXPECT_FALSE(KeySet::from_jwks(json{{"keys", rfc7515_jwk()}}).ok());
  json many = json{{"keys", json::array()}};
  for (int i = 0; i < 100; ++i) many["keys"].push_back(SigningKey::generate().public_jwk());
  EXPECT_FALSE(KeySet::from_jwks(many).ok());
}

TEST(KeySet, RefusesOneKidForTwoKeys) {
  auto jwk = SigningKey::generate().public_jwk();
  jwk["kid"] = "rfc7515-a3";
  auto set = KeySet::from_jwks(json{{"keys", {rfc7515_jwk(), jwk}}});
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.error().code, Errc::invalid_input);
  KeySet direct;
  ASSERT_TRUE(direct.add(rfc7515_jwk()).ok());
  EXPECT_EQ(direct.add(jwk).error().code, Errc::conflict);
  EXPECT_TRUE(KeySet::from_jwks(json{{"keys", {rfc7515_jwk(), rfc7515_jwk()}}}).ok());
}

// ---- KeyRing ----

struct KeyRingTest : ::testing::Test {
  fs::path dir;
  void SetUp() override {
    char tmpl[] = "/tmp/paddock-keyring-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = fs::path(tmpl) / "jwt-keys";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir.parent_path(), ec);
  }
  static unsigned mode_of(const fs::path& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& entry : fs::directory_iterator(dir)) out.push_back(entry.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

TEST_F(KeyRingTest, FirstOpenCreatesOnePrivateKey) {
  auto ring = KeyRing::open(dir);
  ASSERT_TRUE(ring.ok()) << ring.error().message;
  const auto kid = ring->current_kid();
  std::vector<std::string> expected = {kid + ".pem", "current"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(files(), expected);
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_EQ(mode_of(dir / (kid + ".pem")), 0600u);
  EXPECT_EQ(mode_of(dir / "current"), 0600u);
  EXPECT_EQ(ring->public_keys().size(), 1u);

  auto token = ring->sign(claims_until(kNow + 60));
  ASSERT_TRUE(token.ok());
  auto again = KeyRing::open(dir);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->current_kid(), kid);
  EXPECT_TRUE(again->verify(*token, kNow).ok());
  EXPECT_TRUE(verify(*token, again->public_keys(), kNow).ok());
}

TEST_F(KeyRingTest, OldKeysStillVerifyAfterRotate) {
  auto ring = KeyRing::open(dir);
  ASSERT_TRUE(ring.ok());
  const auto old_kid = ring->current_kid();
  const auto old_token = ring->sign(claims_until(kNow + 60)).value();
  const auto agent_keys = ring->public_keys();  // what an agent had before

  auto new_kid = ring->rotate();
  ASSERT_TRUE(new_kid.ok()) << new_kid.error().message;
  EXPECT_NE(*new_kid, old_kid);
  EXPECT_EQ(ring->current_kid(), *new_kid);
  const auto new_token = ring->sign(claims_until(kNow + 60)).value();
  EXPECT_EQ(json::parse(unb64(parts(new_token)[0])).at("kid"), *new_kid);
  EXPECT_TRUE(ring->verify(old_token, kNow).ok());
  EXPECT_TRUE(ring->verify(new_token, kNow).ok());
  EXPECT_EQ(ring->public_keys().size(), 2u);
  // An agent with the old JWKS cannot verify until it gets the new one.
  expect_refused(verify(new_token, agent_keys, kNow), "unknown key");
  auto published = KeySet::from_jwks(json::parse(ring->public_keys().to_jwks().dump()));
  ASSERT_TRUE(published.ok());
  EXPECT_TRUE(verify(new_token, *published, kNow).ok());
  EXPECT_TRUE(verify(old_token, *published, kNow).ok());

  auto reopened = KeyRing::open(dir);
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  EXPECT_EQ(reopened->current_kid(), *new_kid);
  EXPECT_TRUE(reopened->verify(old_token, kNow).ok());
  EXPECT_EQ(mode_of(dir / (*new_kid + ".pem")), 0600u);
}

TEST_F(KeyRingTest, RetireForgetsOnlyOldKeys) {
  auto ring = KeyRing::open(dir);
  ASSERT_TRUE(ring.ok());
  const auto old_kid = ring->current_kid();
  const auto old_token = ring->sign(claims_until(kNow + 60)).value();
  ASSERT_TRUE(ring->rotate().ok());
  EXPECT_EQ(ring->retire(ring->current_kid()).error().code, Errc::conflict);
  EXPECT_EQ(ring->retire("nope").error().code, Errc::not_found);
  ASSERT_TRUE(ring->retire(old_kid).ok());
  expect_refused(ring->verify(old_token, kNow), "unknown key");
  EXPECT_FALSE(fs::exists(dir / (old_kid + ".pem")));
  EXPECT_EQ(ring->public_keys().size(), 1u);
  auto reopened = KeyRing::open(dir);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(reopened->public_keys().size(), 1u);
}

TEST_F(KeyRingTest, RefusesForeignOrMismatchedFiles) {
  ASSERT_TRUE(KeyRing::open(dir).ok());
  // Leftovers of interrupted writes and unrelated files are ignored.
  std::ofstream(dir / ".abc.pem.tmp-1") << "partial";
  std::ofstream(dir / "README") << "hello";
  ASSERT_TRUE(KeyRing::open(dir).ok());

  const auto stray = SigningKey::generate();
  std::ofstream(dir / "wrong-name.pem") << stray.private_pem();
  auto refused = KeyRing::open(dir);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("kid"), std::string::npos);
  fs::remove(dir / "wrong-name.pem");

  std::ofstream(dir / "garbage.pem") << "not a key";
  EXPECT_FALSE(KeyRing::open(dir).ok());
  fs::remove(dir / "garbage.pem");

  std::ofstream(dir / "current", std::ios::trunc) << "missing-kid\n";
  EXPECT_FALSE(KeyRing::open(dir).ok());

  EXPECT_FALSE(KeyRing::open(dir / "current").ok());  // a file, not a directory
}

TEST_F(KeyRingTest, NewestKeySignsWhenCurrentFileIsLost) {
  auto ring = KeyRing::open(dir);
  ASSERT_TRUE(ring.ok());
  const auto old_kid = ring->current_kid();
  const auto new_kid = ring->rotate().value();
  const auto now = fs::file_time_type::clock::now();
  fs::last_write_time(dir / (old_kid + ".pem"), now - std::chrono::hours(1));
  fs::last_write_time(dir / (new_kid + ".pem"), now);
  fs::remove(dir / "current");
  auto reopened = KeyRing::open(dir);
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  EXPECT_EQ(reopened->current_kid(), new_kid);
  EXPECT_TRUE(fs::exists(dir / "current"));
}

TEST_F(KeyRingTest, ConcurrentSignAndVerifyAcrossRotations) {
  auto ring = KeyRing::open(dir);
  ASSERT_TRUE(ring.ok());
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < 300 || !stop; ++i) {
        auto claims = claims_until(kNow + 60);
        claims["jti"] = std::to_string(t) + "-" + std::to_string(i);
        auto token = ring->sign(claims);
        if (!token.ok()) { ++failures; continue; }
        auto checked = ring->verify(*token, kNow);
        if (!checked.ok() || checked->at("jti") != claims["jti"]) ++failures;
        if (!verify(*token, ring->public_keys(), kNow).ok()) ++failures;
        if (i > 5000) break;
      }
    });
  }
  for (int r = 0; r < 5; ++r) {
    if (!ring->rotate().ok()) ++failures;
  }
  stop = true;
  for (auto& w : workers) w.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(ring->public_keys().size(), 6u);
}

}  // namespace
}  // namespace paddock::jwt
