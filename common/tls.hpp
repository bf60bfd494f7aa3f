#pragma once
// TLS for server, agent and CLI: the server's own CA and certificate, loading
// an operator's certificate, and hardened Asio SSL contexts for both ends.
//
// Trust model: on first start the server makes a private CA whose ca.pem
// never changes afterwards; agents learn its sha256 (ca_checksum) out of band,
// fetch ca.pem once without verification, compare checksums, and from then on
// pin that CA alone.

#include "common/result.hpp"

#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paddock::tls {

// What a TLS server presents, as PEM text.
struct ServerIdentity {
  std::string ca_pem;          // exact bytes of ca.pem; empty for an operator's certificate
  std::string cert_chain_pem;  // leaf certificate first, then the rest of the chain
  std::string key_pem;         // the leaf's private key (PKCS#8, unencrypted)
};

// Makes or reuses the server's CA and certificate in `dir` (ca.pem,
// ca-key.pem, server.pem, server-key.pem; keys are 0600, every file is written
// atomically). `names` are DNS names and IPv4/IPv6 literals (IPv6 may be in
// brackets) the certificate must cover; at least one is required.
// The CA is made only when ca.pem does not exist, and is never replaced. The
// server certificate is re-issued from it when it is missing, unreadable, not
// signed by the CA, does not cover every name, or expires within 30 days; only
// then is ca-key.pem needed. Not safe to run concurrently on the same `dir`.
Result<ServerIdentity> ensure_server_identity(const std::filesystem::path& dir,
                                              const std::vector<std::string>& names);

// Loads an operator-supplied certificate (chain) and key (--tls-cert/--tls-key).
// Fails with one line for an unreadable file, bad PEM, an encrypted key, or a
// key that does not match the certificate. The result's ca_pem is empty.
Result<ServerIdentity> load_operator_identity(const std::filesystem::path& cert_path,
                                              const std::filesystem::path& key_path);

// Lowercase hex sha256 of exactly these bytes: what agents compare against.
std::string ca_checksum(std::string_view ca_pem);

// A server context from in-memory PEMs: TLS 1.2+, AEAD ECDHE ciphers only, no
// compression, no renegotiation. The context is immutable once returned and
// may be shared by any number of streams and threads.
Result<std::shared_ptr<boost::asio::ssl::context>> make_server_context(const ServerIdentity& identity);

// How a client decides whether to trust the server.
struct ClientTrust {
  enum class Mode {
    system,     // the system trust store (OpenSSL's default verify paths)
    pinned_ca,  // pinned_ca_pem alone; the system store is not consulted
    insecure,   // no verification: only to fetch ca.pem before comparing checksums
  };
  Mode mode = Mode::system;
  std::string pinned_ca_pem;  // one or more PEM certificates, for Mode::pinned_ca

  static ClientTrust system() { return {}; }
  static ClientTrust pinned(std::string ca_pem) { return {Mode::pinned_ca, std::move(ca_pem)}; }
  static ClientTrust insecure() { return {Mode::insecure, {}}; }
};

// A client context with the same protocol limits as the server's. The
// server's name is checked per stream: call prepare_client_stream.
Result<std::shared_ptr<boost::asio::ssl::context>> make_client_context(const ClientTrust& trust);

// Before the handshake: sets SNI and the name the server's certificate must
// carry. `host` is a DNS name or an IP literal ("[::1]" allowed); for an IP
// no SNI is sent and the certificate must hold that IP address.
Status prepare_client_ssl(SSL* ssl, std::string_view host);

// The same for boost::asio::ssl::stream<…> or boost::beast::ssl_stream<…>.
template <class SslStream>
Status prepare_client_stream(SslStream& stream, std::string_view host) {
  return prepare_client_ssl(stream.native_handle(), host);
}

}  // namespace paddock::tls
