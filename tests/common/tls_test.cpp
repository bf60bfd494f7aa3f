#include "common/tls.hpp"

#include "common/crypto.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace tls = paddock::tls;
using asio::ip::tcp;
using paddock::Errc;

#define ASSERT_OK(r) ASSERT_TRUE((r).ok()) << (r).error().message

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::path(testing::TempDir()) / "paddock_tls_XXXXXX").string();
    if (const char* made = mkdtemp(pattern.data())) path_ = made;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

unsigned mode_of(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

X509Ptr parse_cert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

PkeyPtr parse_key(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return bio_text(bio.get());
}

std::string key_pem(EVP_PKEY* key, const EVP_CIPHER* cipher = nullptr, const char* passphrase = nullptr) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, cipher, nullptr, 0, nullptr,
                           const_cast<char*>(passphrase));
  return bio_text(bio.get());
}

PkeyPtr new_key() { return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

int days_until(const ASN1_TIME* t) {
  int days = 0;
  int seconds = 0;
  ASN1_TIME_diff(&days, &seconds, nullptr, t);
  return days;
}

// A server certificate made outside ensure_server_identity, to plant states
// it must recover from: `issuer`'s name, signed by `signer`, valid `days`.
std::pair<std::string, std::string> forge_server_cert(X509* issuer, EVP_PKEY* signer, const char* san, int days) {
  PkeyPtr key = new_key();
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 42);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("forged"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  X509V3_CTX ctx{};
  X509V3_set_ctx(&ctx, issuer, cert.get(), nullptr, nullptr, 0);
  ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, NID_subject_alt_name, san));
  X509_add_ext(cert.get(), ext.get(), -1);
  X509_sign(cert.get(), signer, EVP_sha256());
  return {cert_pem(cert.get()), key_pem(key.get())};
}

const std::vector<std::string> kNames = {"localhost", "127.0.0.1", "::1"};

// ---- handshakes over loopback ---------------------------------------------

struct Outcome {
  bool finished = false;  // both ends completed before the deadline
  std::string prepare_error;
  boost::system::error_code client;
  boost::system::error_code server;
  int version = 0;  // negotiated, as seen by the client
  std::string received;
};

// One TLS connection over 127.0.0.1 (port 0): handshake, then the client
// sends "ping". Runs on the calling thread; no sleeps, a deadline instead.
Outcome connect_once(asio::ssl::context& server_ctx, asio::ssl::context& client_ctx, std::string_view host) {
  Outcome out;
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::ssl::stream<tcp::socket> server(io, server_ctx);
  asio::ssl::stream<tcp::socket> client(io, client_ctx);
  if (paddock::Status s = tls::prepare_client_stream(client, host); !s) {
    out.prepare_error = s.error().message;
    return out;
  }
  int pending = 2;
  std::array<char, 4> buf{};

  acceptor.async_accept(server.next_layer(), [&](boost::system::error_code ec) {
    if (ec) {
      out.server = ec;
      --pending;
      return;
    }
    server.async_handshake(asio::ssl::stream_base::server, [&](boost::system::error_code hs) {
      if (hs) {
        out.server = hs;
        --pending;
        return;
      }
      asio::async_read(server, asio::buffer(buf), [&](boost::system::error_code rd, std::size_t n) {
        out.server = rd;
        out.received.assign(buf.data(), n);
        --pending;
      });
    });
  });
  client.next_layer().async_connect(acceptor.local_endpoint(), [&](boost::system::error_code ec) {
    if (ec) {
      out.client = ec;
      --pending;
      return;
    }
    client.async_handshake(asio::ssl::stream_base::client, [&](boost::system::error_code hs) {
      if (hs) {
        out.client = hs;
        --pending;
        return;
      }
      out.version = SSL_version(client.native_handle());
      asio::async_write(client, asio::buffer("ping", 4), [&](boost::system::error_code wr, std::size_t) {
        out.client = wr;
        --pending;
      });
    });
  });
  io.run_for(std::chrono::seconds(20));
  out.finished = pending == 0;
  return out;
}

class TlsHandshake : public testing::Test {
 protected:
  void SetUp() override {
    auto identity = tls::ensure_server_identity(dir_.path() / "server", kNames);
    ASSERT_OK(identity);
    identity_ = *identity;
    auto ctx = tls::make_server_context(identity_);
    ASSERT_OK(ctx);
    server_ctx_ = *ctx;
  }

  std::shared_ptr<asio::ssl::context> client(const tls::ClientTrust& trust) {
    auto ctx = tls::make_client_context(trust);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message;
    return ctx.ok() ? *ctx : nullptr;
  }

  TempDir dir_;
  tls::ServerIdentity identity_;
  std::shared_ptr<asio::ssl::context> server_ctx_;
};

}  // namespace

// ---- ensure_server_identity -------------------------------------------------

TEST(TlsIdentity, CreatesCaAndServerCertificate) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "tls";
  auto identity = tls::ensure_server_identity(dir, kNames);
  ASSERT_OK(identity);

  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.insert(entry.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem"}));
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_EQ(mode_of(dir / "ca-key.pem"), 0600u);
  EXPECT_EQ(mode_of(dir / "server-key.pem"), 0600u);
  EXPECT_EQ(mode_of(dir / "ca.pem"), 0644u);

  EXPECT_EQ(identity->ca_pem, read_bytes(dir / "ca.pem"));
  EXPECT_EQ(identity->cert_chain_pem, read_bytes(dir / "server.pem") + read_bytes(dir / "ca.pem"));
  EXPECT_EQ(identity->key_pem, read_bytes(dir / "server-key.pem"));

  X509Ptr ca = parse_cert(identity->ca_pem);
  ASSERT_TRUE(ca);
  std::array<char, 256> cn{};
  X509_NAME_get_text_by_NID(X509_get_subject_name(ca.get()), NID_commonName, cn.data(), cn.size());
  EXPECT_EQ(std::string(cn.data()).rfind("Paddock CA ", 0), 0u) << cn.data();
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  const int bc = X509_get_ext_by_NID(ca.get(), NID_basic_constraints, -1);
  ASSERT_GE(bc, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(ca.get(), bc)), 1);
  EXPECT_EQ(X509_get_key_usage(ca.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_TRUE(EVP_PKEY_is_a(X509_get0_pubkey(ca.get()), "EC"));
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(ca.get())), 256);
  EXPECT_GT(days_until(X509_get0_notAfter(ca.get())), 3600);
  EXPECT_EQ(X509_verify(ca.get(), X509_get0_pubkey(ca.get())), 1);

  X509Ptr leaf = parse_cert(identity->cert_chain_pem);
  ASSERT_TRUE(leaf);
  EXPECT_EQ(X509_verify(leaf.get(), X509_get0_pubkey(ca.get())), 1);
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_EQ(X509_check_host(leaf.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "::1", 0), 1);
  EXPECT_NE(X509_check_host(leaf.get(), "example.com", 0, 0, nullptr), 1);
  EXPECT_TRUE(X509_get_extended_key_usage(leaf.get()) & XKU_SSL_SERVER);
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(leaf.get())), 256);
  const int days = days_until(X509_get0_notAfter(leaf.get()));
  EXPECT_GT(days, 700);
  EXPECT_LE(days, 731);
  // A random 128-bit serial: two certificates never share it in practice.
  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf.get()), nullptr);
  EXPECT_GT(BN_num_bits(serial), 100);
  BN_free(serial);
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf.get()), parse_key(identity->key_pem).get()), 1);
}

TEST(TlsIdentity, SecondStartReusesEverythingByteForByte) {
  TempDir tmp;
  auto first = tls::ensure_server_identity(tmp.path(), kNames);
  ASSERT_OK(first);
  const std::string ca = read_bytes(tmp.path() / "ca.pem");
  const std::string ca_key = read_bytes(tmp.path() / "ca-key.pem");
  const std::string server = read_bytes(tmp.path() / "server.pem");

  // Same names in another order and case: nothing to do.
  auto second = tls::ensure_server_identity(tmp.path(), {"[::1]", "LocalHost", "127.0.0.1"});
  ASSERT_OK(second);
  EXPECT_EQ(read_bytes(tmp.path() / "ca.pem"), ca);
  EXPECT_EQ(read_bytes(tmp.path() / "ca-key.pem"), ca_key);
  EXPECT_EQ(read_bytes(tmp.path() / "server.pem"), server);
  EXPECT_EQ(second->ca_pem, first->ca_pem);
  EXPECT_EQ(second->cert_chain_pem, first->cert_chain_pem);
  EXPECT_EQ(second->key_pem, first->key_pem);

  // A subset of the names is still covered.
  auto third = tls::ensure_server_identity(tmp.path(), {"localhost"});
  ASSERT_OK(third);
  EXPECT_EQ(read_bytes(tmp.path() / "server.pem"), server);
}

TEST(TlsIdentity, NewNameReissuesServerCertificateFromSameCa) {
  TempDir tmp;
  auto first = tls::ensure_server_identity(tmp.path(), kNames);
  ASSERT_OK(first);
  const std::string ca = read_bytes(tmp.path() / "ca.pem");
  const std::string server = read_bytes(tmp.path() / "server.pem");

  auto second = tls::ensure_server_identity(tmp.path(), {"localhost", "paddock.example.com", "10.1.2.3"});
  ASSERT_OK(second);
  EXPECT_EQ(read_bytes(tmp.path() / "ca.pem"), ca);
  EXPECT_EQ(second->ca_pem, ca);
  EXPECT_EQ(tls::ca_checksum(second->ca_pem), tls::ca_checksum(first->ca_pem));
  EXPECT_NE(read_bytes(tmp.path() / "server.pem"), server);
  EXPECT_NE(second->key_pem, first->key_pem);
  EXPECT_EQ(mode_of(tmp.path() / "server-key.pem"), 0600u);

  X509Ptr ca_cert = parse_cert(ca);
  X509Ptr leaf = parse_cert(second->cert_chain_pem);
  EXPECT_EQ(X509_verify(leaf.get(), X509_get0_pubkey(ca_cert.get())), 1);
  EXPECT_EQ(X509_check_host(leaf.get(), "paddock.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "10.1.2.3", 0), 1);

  // No temporary files are left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 4);
}

TEST(TlsIdentity, ServerCertificateExpiringWithin30DaysIsRenewed) {
  TempDir tmp;
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  X509Ptr ca = parse_cert(read_bytes(tmp.path() / "ca.pem"));
  PkeyPtr ca_key = parse_key(read_bytes(tmp.path() / "ca-key.pem"));

  auto [cert, key] = forge_server_cert(ca.get(), ca_key.get(), "DNS:localhost", 10);
  write_bytes(tmp.path() / "server.pem", cert);
  write_bytes(tmp.path() / "server-key.pem", key);
  auto renewed = tls::ensure_server_identity(tmp.path(), {"localhost"});
  ASSERT_OK(renewed);
  X509Ptr leaf = parse_cert(read_bytes(tmp.path() / "server.pem"));
  EXPECT_GT(days_until(X509_get0_notAfter(leaf.get())), 700);
  EXPECT_NE(renewed->key_pem, key);
}

TEST(TlsIdentity, ServerCertificateExpiringLaterIsKept) {
  TempDir tmp;
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  X509Ptr ca = parse_cert(read_bytes(tmp.path() / "ca.pem"));
  PkeyPtr ca_key = parse_key(read_bytes(tmp.path() / "ca-key.pem"));

  auto [cert, key] = forge_server_cert(ca.get(), ca_key.get(), "DNS:localhost", 60);
  write_bytes(tmp.path() / "server.pem", cert);
  write_bytes(tmp.path() / "server-key.pem", key);
  auto kept = tls::ensure_server_identity(tmp.path(), {"localhost"});
  ASSERT_OK(kept);
  EXPECT_EQ(read_bytes(tmp.path() / "server.pem"), cert);
  EXPECT_EQ(kept->key_pem, key);
}

TEST(TlsIdentity, ServerCertificateNotFromTheCaIsReplaced) {
  TempDir tmp;
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  X509Ptr ca = parse_cert(read_bytes(tmp.path() / "ca.pem"));
  PkeyPtr stranger = new_key();

  // Right issuer name, wrong signature.
  auto [cert, key] = forge_server_cert(ca.get(), stranger.get(), "DNS:localhost", 365);
  write_bytes(tmp.path() / "server.pem", cert);
  write_bytes(tmp.path() / "server-key.pem", key);
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  X509Ptr leaf = parse_cert(read_bytes(tmp.path() / "server.pem"));
  EXPECT_EQ(X509_verify(leaf.get(), X509_get0_pubkey(ca.get())), 1);
}

TEST(TlsIdentity, DamagedServerFilesAreReplaced) {
  TempDir tmp;
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  const std::string ca = read_bytes(tmp.path() / "ca.pem");

  // A key that does not match (as after a crash between the two writes).
  write_bytes(tmp.path() / "server-key.pem", key_pem(new_key().get()));
  auto repaired = tls::ensure_server_identity(tmp.path(), {"localhost"});
  ASSERT_OK(repaired);
  X509Ptr leaf = parse_cert(repaired->cert_chain_pem);
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf.get()), parse_key(repaired->key_pem).get()), 1);

  write_bytes(tmp.path() / "server.pem", "garbage");
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  EXPECT_TRUE(parse_cert(read_bytes(tmp.path() / "server.pem")));

  fs::remove(tmp.path() / "server.pem");
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  EXPECT_TRUE(parse_cert(read_bytes(tmp.path() / "server.pem")));
  EXPECT_EQ(read_bytes(tmp.path() / "ca.pem"), ca);
}

TEST(TlsIdentity, CaKeyIsOnlyNeededToIssue) {
  TempDir tmp;
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  fs::remove(tmp.path() / "ca-key.pem");

  EXPECT_TRUE(tls::ensure_server_identity(tmp.path(), {"localhost"}).ok());
  auto reissue = tls::ensure_server_identity(tmp.path(), {"localhost", "other.example"});
  ASSERT_FALSE(reissue.ok());
  EXPECT_NE(reissue.error().message.find("ca-key.pem"), std::string::npos) << reissue.error().message;
  EXPECT_FALSE(fs::exists(tmp.path() / "ca-key.pem"));
}

TEST(TlsIdentity, DamagedCaIsAnErrorAndIsNotReplaced) {
  TempDir tmp;
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  write_bytes(tmp.path() / "ca.pem", "not a certificate\n");
  auto result = tls::ensure_server_identity(tmp.path(), {"localhost"});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::invalid_input);
  EXPECT_EQ(result.error().message.find('\n'), std::string::npos);
  EXPECT_EQ(read_bytes(tmp.path() / "ca.pem"), "not a certificate\n");
}

TEST(TlsIdentity, CaKeyWithoutCaIsFromAnInterruptedFirstStart) {
  TempDir tmp;
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  const std::string old_key = read_bytes(tmp.path() / "ca-key.pem");
  fs::remove(tmp.path() / "ca.pem");
  auto identity = tls::ensure_server_identity(tmp.path(), {"localhost"});
  ASSERT_OK(identity);
  EXPECT_NE(read_bytes(tmp.path() / "ca-key.pem"), old_key);
  X509Ptr ca = parse_cert(identity->ca_pem);
  X509Ptr leaf = parse_cert(identity->cert_chain_pem);
  EXPECT_EQ(X509_verify(leaf.get(), X509_get0_pubkey(ca.get())), 1);
}

TEST(TlsIdentity, RejectsBadNames) {
  TempDir tmp;
  const std::vector<std::vector<std::string>> cases = {
      {}, {"has space"}, {"-lead.example"}, {"1.2.3"}, {"a..b"}, {"localhost", "bad/slash"}, {std::string(300, 'a')}};
  for (const std::vector<std::string>& names : cases) {
    auto result = tls::ensure_server_identity(tmp.path(), names);
    ASSERT_FALSE(result.ok()) << (names.empty() ? "(none)" : names.back());
    EXPECT_EQ(result.error().code, Errc::invalid_input);
  }
  // Nothing is written for a rejected call.
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(TlsIdentity, AcceptsWildcardsAndBracketedIpv6) {
  TempDir tmp;
  auto identity = tls::ensure_server_identity(tmp.path(), {"*.Example.COM.", "[fe80::1]", "my_host"});
  ASSERT_OK(identity);
  X509Ptr leaf = parse_cert(identity->cert_chain_pem);
  EXPECT_EQ(X509_check_host(leaf.get(), "node.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "fe80::1", 0), 1);
}

// ---- load_operator_identity -------------------------------------------------

TEST(TlsOperatorIdentity, LoadsAMatchingPair) {
  TempDir tmp;
  auto own = tls::ensure_server_identity(tmp.path(), {"localhost"});
  ASSERT_OK(own);
  auto identity = tls::load_operator_identity(tmp.path() / "server.pem", tmp.path() / "server-key.pem");
  ASSERT_OK(identity);
  EXPECT_TRUE(identity->ca_pem.empty());
  EXPECT_EQ(identity->cert_chain_pem, read_bytes(tmp.path() / "server.pem"));
  EXPECT_TRUE(parse_key(identity->key_pem));
  EXPECT_TRUE(tls::make_server_context(*identity).ok());
}

TEST(TlsOperatorIdentity, MismatchingKeyIsAnError) {
  TempDir tmp;
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  auto result = tls::load_operator_identity(tmp.path() / "server.pem", tmp.path() / "ca-key.pem");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::invalid_input);
  EXPECT_NE(result.error().message.find("does not match"), std::string::npos) << result.error().message;
  EXPECT_EQ(result.error().message.find('\n'), std::string::npos);
}

TEST(TlsOperatorIdentity, UnreadableAndMalformedFilesAreOneLineErrors) {
  TempDir tmp;
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  const fs::path cert = tmp.path() / "server.pem";
  const fs::path key = tmp.path() / "server-key.pem";
  const fs::path junk = tmp.path() / "junk.pem";
  write_bytes(junk, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
  const fs::path empty = tmp.path() / "empty.pem";
  write_bytes(empty, "");

  struct Case {
    fs::path cert;
    fs::path key;
    Errc code;
    std::string mention;
  };
  for (const Case& c : {Case{tmp.path() / "missing.pem", key, Errc::io, "missing.pem"},
                        Case{cert, tmp.path() / "missing-key.pem", Errc::io, "missing-key.pem"},
                        Case{tmp.path(), key, Errc::io, "regular file"},
                        Case{junk, key, Errc::invalid_input, "junk.pem"},
                        Case{empty, key, Errc::invalid_input, "no PEM certificate"},
                        Case{cert, cert, Errc::invalid_input, "TLS key"}}) {
    auto result = tls::load_operator_identity(c.cert, c.key);
    ASSERT_FALSE(result.ok()) << c.mention;
    EXPECT_EQ(result.error().code, c.code) << result.error().message;
    EXPECT_NE(result.error().message.find(c.mention), std::string::npos) << result.error().message;
    EXPECT_EQ(result.error().message.find('\n'), std::string::npos) << result.error().message;
  }
}

TEST(TlsOperatorIdentity, EncryptedKeyIsRefusedWithoutPrompting) {
  TempDir tmp;
  ASSERT_OK(tls::ensure_server_identity(tmp.path(), {"localhost"}));
  PkeyPtr key = parse_key(read_bytes(tmp.path() / "server-key.pem"));
  write_bytes(tmp.path() / "encrypted.pem", key_pem(key.get(), EVP_aes_256_cbc(), "secret"));
  auto result = tls::load_operator_identity(tmp.path() / "server.pem", tmp.path() / "encrypted.pem");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("passphrase"), std::string::npos) << result.error().message;
}

// ---- ca_checksum ------------------------------------------------------------

TEST(TlsChecksum, IsSha256HexOfTheExactFileBytes) {
  EXPECT_EQ(tls::ca_checksum("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(tls::ca_checksum(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

  TempDir tmp;
  auto identity = tls::ensure_server_identity(tmp.path(), {"localhost"});
  ASSERT_OK(identity);
  const std::string file = read_bytes(tmp.path() / "ca.pem");
  EXPECT_EQ(tls::ca_checksum(identity->ca_pem), paddock::crypto::sha256_hex(file));
  EXPECT_EQ(tls::ca_checksum(identity->ca_pem).size(), 64u);
}

// ---- contexts and handshakes ------------------------------------------------

TEST_F(TlsHandshake, SucceedsWithThePinnedCa) {
  auto ctx = client(tls::ClientTrust::pinned(identity_.ca_pem));
  ASSERT_TRUE(ctx);
  for (const char* host : {"localhost", "127.0.0.1"}) {
    Outcome out = connect_once(*server_ctx_, *ctx, host);
    ASSERT_TRUE(out.finished) << host;
    EXPECT_TRUE(out.prepare_error.empty()) << out.prepare_error;
    EXPECT_FALSE(out.client) << host << ": " << out.client.message();
    EXPECT_FALSE(out.server) << host << ": " << out.server.message();
    EXPECT_GE(out.version, TLS1_2_VERSION);
    EXPECT_EQ(out.received, "ping");
  }
}

TEST_F(TlsHandshake, FailsWithAnotherCaPinned) {
  TempDir other;
  auto stranger = tls::ensure_server_identity(other.path(), kNames);
  ASSERT_OK(stranger);
  auto ctx = client(tls::ClientTrust::pinned(stranger->ca_pem));
  ASSERT_TRUE(ctx);
  Outcome out = connect_once(*server_ctx_, *ctx, "localhost");
  ASSERT_TRUE(out.finished);
  EXPECT_TRUE(out.client);
  EXPECT_TRUE(out.server);
  EXPECT_TRUE(out.received.empty());
}

TEST_F(TlsHandshake, FailsOnHostnameMismatch) {
  auto ctx = client(tls::ClientTrust::pinned(identity_.ca_pem));
  ASSERT_TRUE(ctx);
  for (const char* host : {"paddock.example.com", "127.0.0.2"}) {
    Outcome out = connect_once(*server_ctx_, *ctx, host);
    ASSERT_TRUE(out.finished) << host;
    EXPECT_TRUE(out.prepare_error.empty()) << out.prepare_error;
    EXPECT_TRUE(out.client) << host;
    EXPECT_TRUE(out.received.empty()) << host;
  }
}

TEST_F(TlsHandshake, SystemTrustDoesNotKnowThePrivateCa) {
  auto ctx = client(tls::ClientTrust::system());
  ASSERT_TRUE(ctx);
  Outcome out = connect_once(*server_ctx_, *ctx, "localhost");
  ASSERT_TRUE(out.finished);
  EXPECT_TRUE(out.client);
}

TEST_F(TlsHandshake, InsecureAcceptsAnyCertificate) {
  auto ctx = client(tls::ClientTrust::insecure());
  ASSERT_TRUE(ctx);
  Outcome out = connect_once(*server_ctx_, *ctx, "not-the-name.example");
  ASSERT_TRUE(out.finished);
  EXPECT_FALSE(out.client) << out.client.message();
  EXPECT_EQ(out.received, "ping");
}

TEST_F(TlsHandshake, OperatorIdentityServes) {
  auto identity = tls::load_operator_identity(dir_.path() / "server" / "server.pem",
                                              dir_.path() / "server" / "server-key.pem");
  ASSERT_OK(identity);
  auto server = tls::make_server_context(*identity);
  ASSERT_OK(server);
  auto ctx = client(tls::ClientTrust::pinned(identity_.ca_pem));
  ASSERT_TRUE(ctx);
  Outcome out = connect_once(**server, *ctx, "localhost");
  ASSERT_TRUE(out.finished);
  EXPECT_FALSE(out.client) << out.client.message();
  EXPECT_EQ(out.received, "ping");
}

TEST_F(TlsHandshake, RefusesProtocolsBeforeTls12) {
  for (const auto& ctx : {server_ctx_, client(tls::ClientTrust::insecure())}) {
    ASSERT_TRUE(ctx);
    SSL_CTX* native = ctx->native_handle();
    EXPECT_EQ(SSL_CTX_get_min_proto_version(native), TLS1_2_VERSION);
    EXPECT_TRUE(SSL_CTX_get_options(native) & SSL_OP_NO_COMPRESSION);
    EXPECT_TRUE(SSL_CTX_get_options(native) & SSL_OP_NO_RENEGOTIATION);
  }
  auto old = client(tls::ClientTrust::insecure());
  ASSERT_TRUE(old);
  SSL_CTX_set_min_proto_version(old->native_handle(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(old->native_handle(), TLS1_1_VERSION);
  SSL_CTX_set_security_level(old->native_handle(), 0);
  SSL_CTX_set_cipher_list(old->native_handle(), "DEFAULT:@SECLEVEL=0");
  Outcome out = connect_once(*server_ctx_, *old, "localhost");
  ASSERT_TRUE(out.finished);
  EXPECT_TRUE(out.client);
  EXPECT_TRUE(out.server);
}

TEST(TlsClientContext, PinnedTrustHoldsOnlyThePinnedCa) {
  TempDir tmp;
  auto identity = tls::ensure_server_identity(tmp.path(), {"localhost"});
  ASSERT_OK(identity);
  auto ctx = tls::make_client_context(tls::ClientTrust::pinned(identity->ca_pem));
  ASSERT_OK(ctx);
  X509_STORE* store = SSL_CTX_get_cert_store((*ctx)->native_handle());
  EXPECT_EQ(sk_X509_OBJECT_num(X509_STORE_get0_objects(store)), 1);
  EXPECT_EQ(SSL_CTX_get_verify_mode((*ctx)->native_handle()), SSL_VERIFY_PEER);

  auto bad = tls::make_client_context(tls::ClientTrust::pinned("not pem"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::invalid_input);
}

TEST(TlsClientStream, SetsSniForNamesButNotForIps) {
  auto ctx = tls::make_client_context(tls::ClientTrust::insecure());
  ASSERT_OK(ctx);
  asio::io_context io;
  {
    asio::ssl::stream<tcp::socket> stream(io, **ctx);
    ASSERT_OK(tls::prepare_client_stream(stream, "Paddock.Example.com."));
    const char* sni = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
    ASSERT_NE(sni, nullptr);
    EXPECT_STREQ(sni, "paddock.example.com");
  }
  for (const char* ip : {"127.0.0.1", "[::1]", "::1"}) {
    asio::ssl::stream<tcp::socket> stream(io, **ctx);
    ASSERT_OK(tls::prepare_client_stream(stream, ip));
    EXPECT_EQ(SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name), nullptr) << ip;
  }
  for (const char* bad : {"", "bad host", "*.example.com", "a..b"}) {
    asio::ssl::stream<tcp::socket> stream(io, **ctx);
    auto status = tls::prepare_client_stream(stream, bad);
    ASSERT_FALSE(status.ok()) << bad;
    EXPECT_EQ(status.error().code, Errc::invalid_input);
  }
}
