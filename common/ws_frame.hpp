#pragma once
// The WebSocket frame format (RFC 6455, section 5): parsing a frame's header
// from untrusted bytes, unmasking, and writing headers. No state and no I/O:
// the sockets built on it decide what a frame means.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace paddock::ws {

enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

inline bool is_control(Opcode op) { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

// Control frames carry at most this much payload (RFC 6455, 5.5).
inline constexpr std::size_t kMaxControlPayload = 125;
// The longest header: 2 bytes, an 8-byte length and a 4-byte masking key.
inline constexpr std::size_t kMaxHeaderSize = 14;

struct FrameHeader {
  bool fin = true;
  Opcode opcode = Opcode::binary;
  bool masked = false;
  unsigned char key[4] = {};
  std::uint64_t length = 0;  // of the payload
  std::size_t size = 0;      // of the header itself
};

enum class ParseState { need_more, frame, malformed };

// Parses the header at the front of `bytes`. `malformed` (with the reason in
// `why`) for reserved bits set (no extension is ever negotiated), unknown
// opcodes, fragmented or oversized control frames, and lengths above 2^63.
// Whether a frame must be masked is the caller's rule.
ParseState parse_header(std::string_view bytes, FrameHeader& out, std::string& why);

// XORs `data` with the masking key, `offset` bytes into the frame's payload
// (a payload may arrive in pieces). Masking and unmasking are the same.
void apply_mask(char* data, std::size_t size, const unsigned char key[4], std::uint64_t offset);

// Writes an unfragmented frame's header into `out` and returns its size.
// With `key` the frame is masked (a client's); the payload is masked apart.
std::size_t write_header(unsigned char out[kMaxHeaderSize], Opcode opcode, std::uint64_t length,
                         const unsigned char* key = nullptr);

// A close frame's payload: the code (big-endian) and the reason, cut to fit
// a control frame.
std::string close_payload(std::uint16_t code, std::string_view reason);

// Reads a close frame's payload. False when it is not a valid one: one byte,
// or a code that may not be sent (RFC 6455, 7.4). An empty payload is valid
// and gives code 1005 (no status).
bool parse_close_payload(std::string_view payload, std::uint16_t& code, std::string& reason);

}  // namespace paddock::ws
