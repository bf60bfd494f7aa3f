#include "common/tls.hpp"

#include "common/crypto.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <system_error>
#include <utility>

namespace paddock::tls {

namespace {

namespace fs = std::filesystem;

constexpr int kCaDays = 3650;
constexpr int kServerDays = 730;
constexpr int kRenewWithinDays = 30;
// Certificates start an hour in the past so a peer whose clock is slightly
// behind does not reject a certificate made a moment ago.
constexpr long kBackdateSeconds = 3600;
// PEM files are small; a cap keeps a wrong path (a log, a device) from
// exhausting memory.
constexpr off_t kMaxPemFileBytes = 1 << 20;

constexpr const char* kCaCertFile = "ca.pem";
constexpr const char* kCaKeyFile = "ca-key.pem";
constexpr const char* kServerCertFile = "server.pem";
constexpr const char* kServerKeyFile = "server-key.pem";

// TLS 1.2 suites with forward secrecy and AEAD only (Mozilla "intermediate"
// without DHE); TLS 1.3 keeps OpenSSL's defaults, which are all AEAD.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using Asn1StringPtr = std::unique_ptr<ASN1_STRING, Deleter<ASN1_STRING_free>>;

// The first (root-cause) entry of OpenSSL's error queue, which is emptied so
// stale entries never leak into a later, unrelated message.
std::string openssl_reason() {
  const unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) return "unknown OpenSSL error";
  if (const char* reason = ERR_reason_error_string(first)) return reason;
  return "OpenSSL error " + std::to_string(first);
}

Error openssl_error(Errc code, const std::string& what) {
  return Error{code, what + ": " + openssl_reason()};
}

// ---- names -----------------------------------------------------------------

// A name the server certificate must carry.
struct SubjectName {
  std::string text;  // a lowercase DNS name, or the IP literal without brackets
  std::string ip;    // the address's 4 or 16 bytes; empty for a DNS name
};

std::string_view strip_brackets(std::string_view host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

std::optional<std::string> parse_ip(std::string_view text) {
  const std::string s(text);
  std::array<unsigned char, 16> buf{};
  if (inet_pton(AF_INET, s.c_str(), buf.data()) == 1) {
    return std::string(reinterpret_cast<const char*>(buf.data()), 4);
  }
  if (inet_pton(AF_INET6, s.c_str(), buf.data()) == 1) {
    return std::string(reinterpret_cast<const char*>(buf.data()), 16);
  }
  return std::nullopt;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A lowercase host name: labels of [a-z0-9_-], 1..63 long, no leading or
// trailing '-', a last label that is not all digits (that would be a
// malformed IP address), and optionally a whole-label "*." wildcard in front.
bool valid_dns_name(std::string_view name, bool allow_wildcard) {
  if (name.empty() || name.size() > 253) return false;
  if (allow_wildcard && name.size() > 2 && name.substr(0, 2) == "*.") name.remove_prefix(2);
  bool last_all_digits = false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    last_all_digits = true;
    for (char c : label) {
      const bool digit = c >= '0' && c <= '9';
      if (!(digit || (c >= 'a' && c <= 'z') || c == '-' || c == '_')) return false;
      last_all_digits = last_all_digits && digit;
    }
    start = end + 1;
  }
  return !last_all_digits;
}

// Lowercase and without the root's trailing dot, which SNI must not carry.
std::string normalize_dns_name(std::string_view name) {
  std::string out = lowercase(name);
  if (out.size() > 1 && out.back() == '.') out.pop_back();
  return out;
}

Result<std::vector<SubjectName>> parse_names(const std::vector<std::string>& names) {
  if (names.empty()) {
    return Error{Errc::invalid_input, "the server certificate needs at least one DNS name or IP address"};
  }
  std::vector<SubjectName> out;
  for (const std::string& raw : names) {
    const std::string_view bare = strip_brackets(raw);
    SubjectName name;
    if (auto ip = parse_ip(bare)) {
      name = SubjectName{std::string(bare), std::move(*ip)};
    } else {
      name.text = normalize_dns_name(raw);
      if (!valid_dns_name(name.text, /*allow_wildcard=*/true)) {
        return Error{Errc::invalid_input, "'" + raw + "' is neither a DNS name nor an IP address"};
      }
    }
    const bool duplicate = std::any_of(out.begin(), out.end(), [&](const SubjectName& n) {
      return n.ip.empty() ? name.ip.empty() && n.text == name.text : n.ip == name.ip;
    });
    if (!duplicate) out.push_back(std::move(name));
  }
  return out;
}

// ---- files -----------------------------------------------------------------

std::string errno_text(int err) { return std::generic_category().message(err); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// The file's bytes; the error message is the reason alone, without the path.
Result<std::string> read_file(const fs::path& path) {
  // O_NONBLOCK: opening a FIFO by mistake must fail below rather than hang.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    const int err = errno;
    return Error{err == ENOENT ? Errc::not_found : Errc::io, errno_text(err)};
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error{Errc::io, errno_text(errno)};
  if (!S_ISREG(st.st_mode)) return Error{Errc::invalid_input, "not a regular file"};
  if (st.st_size > kMaxPemFileBytes) return Error{Errc::invalid_input, "file too large for PEM"};
  std::string out;
  std::array<char, 8192> buf{};
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{Errc::io, errno_text(errno)};
    if (n == 0) break;
    out.append(buf.data(), static_cast<std::size_t>(n));
    if (out.size() > static_cast<std::size_t>(kMaxPemFileBytes)) {
      return Error{Errc::invalid_input, "file too large for PEM"};
    }
  }
  return out;
}

// Writes via a temporary file, fsync and rename, so a crash leaves either the
// old file or the new one, never a torn one; `mode` is set exactly, whatever
// the umask.
Status write_file_atomically(const fs::path& path, std::string_view data, mode_t mode) {
  fs::path tmp = path;
  tmp += ".tmp-" + crypto::hex_encode(crypto::random_bytes(6));
  const auto fail = [&](const std::string& step, int err) -> Status {
    ::unlink(tmp.c_str());
    return Error{Errc::io, "cannot write " + path.string() + ": " + step + ": " + errno_text(err)};
  };
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd.get() < 0) return Error{Errc::io, "cannot create " + tmp.string() + ": " + errno_text(errno)};
  if (::fchmod(fd.get(), mode) != 0) return fail("chmod", errno);
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write", errno);
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("fsync", errno);
  if (::close(fd.release()) != 0) return fail("close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename", errno);
  // Make the rename itself durable.
  Fd dir(::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() >= 0) ::fsync(dir.get());
  return Ok{};
}

// ---- PEM -------------------------------------------------------------------

// Never let OpenSSL prompt for a passphrase on the terminal.
int refuse_passphrase(char*, int, int, void*) { return -1; }

BioPtr memory_bio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Every certificate in `pem`, in order; at least one.
Result<std::vector<X509Ptr>> parse_certificates(std::string_view pem) {
  ERR_clear_error();
  BioPtr bio = memory_bio(pem);
  if (!bio) return openssl_error(Errc::internal, "out of memory");
  std::vector<X509Ptr> certs;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, nullptr));
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  // Reading stops with "no start line" at the end of the input; anything
  // else means a block was malformed.
  const unsigned long err = ERR_peek_last_error();
  const bool clean_end = ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  if (err != 0 && !clean_end) return openssl_error(Errc::invalid_input, "bad PEM certificate");
  ERR_clear_error();
  if (certs.empty()) return Error{Errc::invalid_input, "no PEM certificate found"};
  return certs;
}

Result<PkeyPtr> parse_private_key(std::string_view pem) {
  ERR_clear_error();
  BioPtr bio = memory_bio(pem);
  if (!bio) return openssl_error(Errc::internal, "out of memory");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr));
  if (!key) {
    if (pem.find("ENCRYPTED") != std::string_view::npos) {
      ERR_clear_error();
      return Error{Errc::invalid_input, "the key is passphrase-protected, which is not supported"};
    }
    return openssl_error(Errc::invalid_input, "no usable PEM private key");
  }
  return key;
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

std::string to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  return bio_contents(bio.get());
}

std::string to_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return {};
  }
  return bio_contents(bio.get());
}

std::string time_text(const ASN1_TIME* t) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), t) != 1) return "?";
  return bio_contents(bio.get());
}

bool key_matches(X509* cert, EVP_PKEY* key) { return EVP_PKEY_eq(X509_get0_pubkey(cert), key) == 1; }

// True also when the time is unreadable, so that a bad date means "renew".
bool expires_within(const ASN1_TIME* t, int days) {
  int d = 0;
  int s = 0;
  if (ASN1_TIME_diff(&d, &s, nullptr, t) != 1) return true;
  return d < days;
}

std::string with_final_newline(std::string s) {
  if (!s.empty() && s.back() != '\n') s.push_back('\n');
  return s;
}

// ---- issuing ---------------------------------------------------------------

struct Issued {
  std::string cert_pem;
  std::string key_pem;
};

PkeyPtr make_p256_key() { return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

Status add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx{};
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return openssl_error(Errc::internal, std::string("cannot add extension ") + OBJ_nid2sn(nid));
  }
  return Ok{};
}

Status add_subject_alt_names(X509* cert, const std::vector<SubjectName>& names) {
  GeneralNamesPtr gens(sk_GENERAL_NAME_new_null());
  if (!gens) return openssl_error(Errc::internal, "out of memory");
  for (const SubjectName& name : names) {
    const bool is_ip = !name.ip.empty();
    GeneralNamePtr gen(GENERAL_NAME_new());
    Asn1StringPtr value(is_ip ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new());
    const std::string& bytes = is_ip ? name.ip : name.text;
    if (!gen || !value || ASN1_STRING_set(value.get(), bytes.data(), static_cast<int>(bytes.size())) != 1) {
      return openssl_error(Errc::internal, "out of memory");
    }
    GENERAL_NAME_set0_value(gen.get(), is_ip ? GEN_IPADD : GEN_DNS, value.release());
    if (sk_GENERAL_NAME_push(gens.get(), gen.get()) == 0) {
      return openssl_error(Errc::internal, "out of memory");
    }
    gen.release();
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, gens.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return openssl_error(Errc::internal, "cannot add subjectAltName");
  }
  return Ok{};
}

// Version 3, a random 128-bit serial, the validity and the subject; the
// caller adds the issuer, extensions and the signature.
Status init_certificate(X509* cert, EVP_PKEY* key, int days, const std::string& common_name) {
  const std::string serial_bytes = crypto::random_bytes(16);
  BignumPtr serial(BN_bin2bn(reinterpret_cast<const unsigned char*>(serial_bytes.data()),
                             static_cast<int>(serial_bytes.size()), nullptr));
  X509_NAME* subject = X509_get_subject_name(cert);
  const auto add_entry = [&](const char* field, const std::string& text) {
    return X509_NAME_add_entry_by_txt(subject, field, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(text.c_str()), -1, -1, 0) == 1;
  };
  if (X509_set_version(cert, X509_VERSION_3) != 1 || !serial ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr ||
      X509_gmtime_adj(X509_getm_notBefore(cert), -kBackdateSeconds) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, nullptr) == nullptr ||
      X509_set_pubkey(cert, key) != 1 || !add_entry("O", "Paddock") || !add_entry("CN", common_name)) {
    return openssl_error(Errc::internal, "cannot build certificate");
  }
  return Ok{};
}

Result<Issued> make_ca() {
  PkeyPtr key = make_p256_key();
  X509Ptr cert(X509_new());
  if (!key || !cert) return openssl_error(Errc::internal, "cannot generate CA key");
  const std::string name = "Paddock CA " + crypto::hex_encode(crypto::random_bytes(4));
  if (Status s = init_certificate(cert.get(), key.get(), kCaDays, name); !s) return s.error();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return openssl_error(Errc::internal, "cannot build CA certificate");
  }
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    if (Status s = add_extension(cert.get(), cert.get(), nid, value); !s) return s.error();
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
    return openssl_error(Errc::internal, "cannot sign CA certificate");
  }
  return Issued{to_pem(cert.get()), to_pem(key.get())};
}

Result<Issued> issue_server_certificate(X509* ca, EVP_PKEY* ca_key, const std::vector<SubjectName>& names) {
  PkeyPtr key = make_p256_key();
  X509Ptr cert(X509_new());
  if (!key || !cert) return openssl_error(Errc::internal, "cannot generate server key");
  // The CN is informational (clients match subjectAltName), but it must fit.
  const std::string cn = names.front().text.size() <= 64 ? names.front().text : "Paddock server";
  if (Status s = init_certificate(cert.get(), key.get(), kServerDays, cn); !s) return s.error();
  // Never outlive the CA: the tail would be unverifiable anyway.
  if (ASN1_TIME_compare(X509_get0_notAfter(cert.get()), X509_get0_notAfter(ca)) > 0 &&
      X509_set1_notAfter(cert.get(), X509_get0_notAfter(ca)) != 1) {
    return openssl_error(Errc::internal, "cannot build server certificate");
  }
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca)) != 1) {
    return openssl_error(Errc::internal, "cannot build server certificate");
  }
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                            std::pair{NID_key_usage, "critical,digitalSignature"},
                            std::pair{NID_ext_key_usage, "serverAuth"},
                            std::pair{NID_subject_key_identifier, "hash"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (Status s = add_extension(cert.get(), ca, nid, value); !s) return s.error();
  }
  if (Status s = add_subject_alt_names(cert.get(), names); !s) return s.error();
  if (X509_sign(cert.get(), ca_key, EVP_sha256()) <= 0) {
    return openssl_error(Errc::internal, "cannot sign server certificate");
  }
  return Issued{to_pem(cert.get()), to_pem(key.get())};
}

// ---- checking the existing server certificate ------------------------------

// The first name in `names` the certificate's subjectAltName lacks, if any.
std::optional<std::string> missing_name(X509* cert, const std::vector<SubjectName>& names) {
  GeneralNamesPtr gens(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  std::vector<std::string> dns;
  std::vector<std::string> ips;
  for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens.get()); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(gens.get(), i);
    if (gen->type != GEN_DNS && gen->type != GEN_IPADD) continue;
    const ASN1_STRING* value = gen->type == GEN_DNS ? gen->d.dNSName : gen->d.iPAddress;
    std::string bytes(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                      static_cast<std::size_t>(ASN1_STRING_length(value)));
    if (gen->type == GEN_DNS) dns.push_back(lowercase(bytes));
    else ips.push_back(std::move(bytes));
  }
  for (const SubjectName& name : names) {
    const std::vector<std::string>& have = name.ip.empty() ? dns : ips;
    const std::string& want = name.ip.empty() ? name.text : name.ip;
    if (std::find(have.begin(), have.end(), want) == have.end()) return name.text;
  }
  return std::nullopt;
}

// Empty when the server certificate can stay; otherwise why it cannot.
std::string reissue_reason(const fs::path& dir, X509* ca, const std::vector<SubjectName>& names,
                           std::string& cert_pem, std::string& key_pem) {
  Result<std::string> cert_file = read_file(dir / kServerCertFile);
  if (!cert_file) {
    return cert_file.error().code == Errc::not_found ? "there is none yet"
                                                     : "server.pem: " + cert_file.error().message;
  }
  Result<std::string> key_file = read_file(dir / kServerKeyFile);
  if (!key_file) return "server-key.pem: " + key_file.error().message;
  auto certs = parse_certificates(*cert_file);
  if (!certs) return "server.pem: " + certs.error().message;
  auto key = parse_private_key(*key_file);
  if (!key) return "server-key.pem: " + key.error().message;
  X509* cert = certs->front().get();
  if (!key_matches(cert, key->get())) return "server-key.pem does not match server.pem";
  if (X509_check_issued(ca, cert) != X509_V_OK || X509_verify(cert, X509_get0_pubkey(ca)) != 1) {
    ERR_clear_error();
    return "server.pem was not issued by ca.pem";
  }
  if (auto name = missing_name(cert, names)) return "server.pem does not cover " + *name;
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) return "server.pem is not valid yet";
  // Renewing cannot help once the CA itself is about to end.
  if (expires_within(X509_get0_notAfter(cert), kRenewWithinDays) &&
      ASN1_TIME_compare(X509_get0_notAfter(cert), X509_get0_notAfter(ca)) < 0) {
    return "server.pem expires on " + time_text(X509_get0_notAfter(cert));
  }
  cert_pem = std::move(*cert_file);
  key_pem = std::move(*key_file);
  return {};
}

Result<PkeyPtr> load_ca_key(const fs::path& dir, X509* ca) {
  const fs::path path = dir / kCaKeyFile;
  Result<std::string> pem = read_file(path);
  if (!pem) return Error{Errc::io, "cannot read " + path.string() + ": " + pem.error().message};
  Result<PkeyPtr> key = parse_private_key(*pem);
  if (!key) return Error{Errc::invalid_input, path.string() + ": " + key.error().message};
  if (!key_matches(ca, key->get())) {
    return Error{Errc::invalid_input, path.string() + " does not match " + (dir / kCaCertFile).string()};
  }
  return key;
}

Status ensure_directory(const fs::path& dir) {
  std::error_code ec;
  if (fs::create_directories(dir, ec)) {
    // Created by us: private to the service user.
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  }
  if (ec) return Error{Errc::io, "cannot create " + dir.string() + ": " + ec.message()};
  if (!fs::is_directory(dir, ec)) return Error{Errc::io, dir.string() + " is not a directory"};
  return Ok{};
}

// ---- contexts --------------------------------------------------------------

Status harden(SSL_CTX* ctx, bool server) {
  std::uint64_t options = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
  if (server) options |= SSL_OP_CIPHER_SERVER_PREFERENCE;
  SSL_CTX_set_options(ctx, options);
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 || SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    return openssl_error(Errc::internal, "cannot configure TLS");
  }
  return Ok{};
}

using ContextPtr = std::shared_ptr<boost::asio::ssl::context>;

Result<ContextPtr> new_context(boost::asio::ssl::context::method method) {
  ERR_clear_error();
  try {
    auto ctx = std::make_shared<boost::asio::ssl::context>(method);
    if (Status s = harden(ctx->native_handle(), method == boost::asio::ssl::context::tls_server); !s) {
      return s.error();
    }
    return ctx;
  } catch (const std::exception& e) {
    return Error{Errc::internal, std::string("cannot create TLS context: ") + e.what()};
  }
}

}  // namespace

Result<ServerIdentity> ensure_server_identity(const fs::path& dir, const std::vector<std::string>& names) {
  Result<std::vector<SubjectName>> subject_names = parse_names(names);
  if (!subject_names) return subject_names.error();
  if (Status s = ensure_directory(dir); !s) return s.error();

  const fs::path ca_path = dir / kCaCertFile;
  Result<std::string> ca_pem = read_file(ca_path);
  PkeyPtr ca_key;  // set only when the CA is made now
  if (!ca_pem && ca_pem.error().code == Errc::not_found) {
    // ca.pem is written last, so a ca-key.pem without it is from an
    // interrupted first start: no one can have trusted that CA yet.
    Result<Issued> ca = make_ca();
    if (!ca) return ca.error();
    if (Status s = write_file_atomically(dir / kCaKeyFile, ca->key_pem, 0600); !s) return s.error();
    if (Status s = write_file_atomically(ca_path, ca->cert_pem, 0644); !s) return s.error();
    Result<PkeyPtr> key = parse_private_key(ca->key_pem);
    if (!key) return key.error();
    ca_key = std::move(*key);
    ca_pem = std::move(ca->cert_pem);
    spdlog::info("tls: created a new CA in {} (sha256 {})", dir.string(), ca_checksum(*ca_pem));
  }
  if (!ca_pem) return Error{Errc::io, "cannot read " + ca_path.string() + ": " + ca_pem.error().message};

  Result<std::vector<X509Ptr>> ca_certs = parse_certificates(*ca_pem);
  if (!ca_certs) return Error{Errc::invalid_input, ca_path.string() + ": " + ca_certs.error().message};
  X509* ca = ca_certs->front().get();
  if (X509_check_ca(ca) == 0) {
    return Error{Errc::invalid_input, ca_path.string() + " is not a CA certificate"};
  }
  if (X509_cmp_current_time(X509_get0_notAfter(ca)) <= 0) {
    return Error{Errc::invalid_input,
                 ca_path.string() + " expired on " + time_text(X509_get0_notAfter(ca)) +
                     "; agents trust it by checksum, so replacing it means re-enrolling them"};
  }

  std::string cert_pem;
  std::string key_pem;
  const std::string reason = reissue_reason(dir, ca, *subject_names, cert_pem, key_pem);
  if (!reason.empty()) {
    if (!ca_key) {
      Result<PkeyPtr> key = load_ca_key(dir, ca);
      if (!key) return Error{key.error().code, "a new server certificate is needed (" + reason + "), but " +
                                                   key.error().message};
      ca_key = std::move(*key);
    }
    Result<Issued> issued = issue_server_certificate(ca, ca_key.get(), *subject_names);
    if (!issued) return issued.error();
    // Key first: a crash in between leaves a mismatching pair, which the next
    // start re-issues.
    if (Status s = write_file_atomically(dir / kServerKeyFile, issued->key_pem, 0600); !s) return s.error();
    if (Status s = write_file_atomically(dir / kServerCertFile, issued->cert_pem, 0644); !s) return s.error();
    cert_pem = std::move(issued->cert_pem);
    key_pem = std::move(issued->key_pem);
    std::string list;
    for (const SubjectName& n : *subject_names) list += (list.empty() ? "" : ", ") + n.text;
    spdlog::info("tls: issued a server certificate for {} ({})", list, reason);
  }

  ServerIdentity identity;
  identity.cert_chain_pem = with_final_newline(std::move(cert_pem)) + *ca_pem;
  identity.ca_pem = std::move(*ca_pem);
  identity.key_pem = std::move(key_pem);
  return identity;
}

Result<ServerIdentity> load_operator_identity(const fs::path& cert_path, const fs::path& key_path) {
  Result<std::string> cert_file = read_file(cert_path);
  if (!cert_file) {
    return Error{Errc::io,
                 "cannot read TLS certificate " + cert_path.string() + ": " + cert_file.error().message};
  }
  Result<std::string> key_file = read_file(key_path);
  if (!key_file) {
    return Error{Errc::io, "cannot read TLS key " + key_path.string() + ": " + key_file.error().message};
  }
  Result<std::vector<X509Ptr>> certs = parse_certificates(*cert_file);
  if (!certs) {
    return Error{Errc::invalid_input, "TLS certificate " + cert_path.string() + ": " + certs.error().message};
  }
  Result<PkeyPtr> key = parse_private_key(*key_file);
  if (!key) return Error{Errc::invalid_input, "TLS key " + key_path.string() + ": " + key.error().message};
  X509* leaf = certs->front().get();
  if (!key_matches(leaf, key->get())) {
    return Error{Errc::invalid_input,
                 "TLS key " + key_path.string() + " does not match certificate " + cert_path.string()};
  }
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
    spdlog::warn("tls: certificate {} expired on {}", cert_path.string(),
                 time_text(X509_get0_notAfter(leaf)));
  }
  // Re-encoded, so text around the PEM blocks and key formats OpenSSL reads
  // but peers might not (traditional EC/RSA) are normalized.
  ServerIdentity identity;
  for (const X509Ptr& cert : *certs) identity.cert_chain_pem += to_pem(cert.get());
  identity.key_pem = to_pem(key->get());
  return identity;
}

std::string ca_checksum(std::string_view ca_pem) { return crypto::sha256_hex(ca_pem); }

Result<std::shared_ptr<boost::asio::ssl::context>> make_server_context(const ServerIdentity& identity) {
  Result<std::vector<X509Ptr>> certs = parse_certificates(identity.cert_chain_pem);
  if (!certs) return Error{Errc::invalid_input, "server certificate chain: " + certs.error().message};
  Result<PkeyPtr> key = parse_private_key(identity.key_pem);
  if (!key) return Error{Errc::invalid_input, "server key: " + key.error().message};
  Result<ContextPtr> ctx = new_context(boost::asio::ssl::context::tls_server);
  if (!ctx) return ctx.error();
  SSL_CTX* native = (*ctx)->native_handle();
  if (SSL_CTX_use_certificate(native, certs->front().get()) != 1) {
    return openssl_error(Errc::invalid_input, "server certificate");
  }
  for (std::size_t i = 1; i < certs->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(native, (*certs)[i].get()) != 1) {
      return openssl_error(Errc::invalid_input, "server certificate chain");
    }
  }
  if (SSL_CTX_use_PrivateKey(native, key->get()) != 1 || SSL_CTX_check_private_key(native) != 1) {
    return openssl_error(Errc::invalid_input, "server key");
  }
  // Agents and the CLI never resume a session: no tickets to mint on every
  // handshake, no cache holding a session per connection.
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_set_num_tickets(native, 0) != 1) return openssl_error(Errc::internal, "cannot configure TLS");
  return ctx;
}

Result<std::shared_ptr<boost::asio::ssl::context>> make_client_context(const ClientTrust& trust) {
  Result<ContextPtr> ctx = new_context(boost::asio::ssl::context::tls_client);
  if (!ctx) return ctx.error();
  SSL_CTX* native = (*ctx)->native_handle();
  switch (trust.mode) {
    case ClientTrust::Mode::system:
      if (SSL_CTX_set_default_verify_paths(native) != 1) {
        return openssl_error(Errc::io, "cannot load the system trust store");
      }
      SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
      break;
    case ClientTrust::Mode::pinned_ca: {
      Result<std::vector<X509Ptr>> certs = parse_certificates(trust.pinned_ca_pem);
      if (!certs) return Error{Errc::invalid_input, "pinned CA: " + certs.error().message};
      // A new context's store is empty and has no lookup methods, so these
      // certificates are the only trust anchors: the system store never is.
      X509_STORE* store = SSL_CTX_get_cert_store(native);
      for (const X509Ptr& cert : *certs) {
        if (X509_STORE_add_cert(store, cert.get()) != 1) return openssl_error(Errc::internal, "pinned CA");
      }
      SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
      break;
    }
    case ClientTrust::Mode::insecure:
      SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
      break;
  }
  return ctx;
}

Status prepare_client_ssl(SSL* ssl, std::string_view host) {
  if (ssl == nullptr) return Error{Errc::internal, "no TLS stream"};
  ERR_clear_error();
  const std::string_view bare = strip_brackets(host);
  if (parse_ip(bare)) {
    // RFC 6066 forbids IP addresses in SNI; the certificate must list the IP.
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), std::string(bare).c_str()) != 1) {
      return openssl_error(Errc::internal, "cannot set the expected IP address");
    }
    return Ok{};
  }
  const std::string name = normalize_dns_name(host);
  if (!valid_dns_name(name, /*allow_wildcard=*/false)) {
    return Error{Errc::invalid_input, "'" + std::string(host) + "' is not a valid host name"};
  }
  // SSL_set_tlsext_host_name() spelled out: the macro's C cast trips -Wold-style-cast.
  if (SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(name.c_str())) != 1 ||
      SSL_set1_host(ssl, name.c_str()) != 1) {
    return openssl_error(Errc::internal, "cannot set the expected host name");
  }
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return Ok{};
}

}  // namespace paddock::tls
