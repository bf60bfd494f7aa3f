#pragma once
// The server's side of a WebSocket once Beast has answered the handshake:
// frames read and written here, on the transport directly. Every stream
// message crosses the server twice (agent to server, server to user), and a
// log is one message per line: Beast's read costs a composed operation and a
// completion per message, while this socket hands over every whole message
// already received at once (read_messages) and answers pings itself.
//
// Implements RFC 6455's server role: client frames must be masked, control
// frames are answered (ping with pong, close with close), fragmented
// messages are reassembled, and a protocol error or an oversized message
// closes with 1002 or 1009. Text is not checked for UTF-8 here: every text
// the server reads is parsed as JSON, which does.

#include "common/web_socket.hpp"
#include "server/tls_stream.hpp"

#include <boost/beast/core/tcp_stream.hpp>

#include <memory>
#include <string_view>

namespace paddock::server {

// `received`: bytes read after the upgrade request, already the client's
// first frames. Starts the socket's watchdog (idle timeout 60 s with
// keep-alive pings until set_idle_timeout says otherwise).
std::shared_ptr<WebSocket> make_frame_socket(beast::tcp_stream stream, std::string_view received);
std::shared_ptr<WebSocket> make_frame_socket(TlsStream stream, std::string_view received);

}  // namespace paddock::server
