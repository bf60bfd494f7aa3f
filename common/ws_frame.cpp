#include "common/ws_frame.hpp"

#include <cstring>

namespace paddock::ws {

ParseState parse_header(std::string_view bytes, FrameHeader& out, std::string& why) {
  if (bytes.size() < 2) return ParseState::need_more;
  const auto b0 = static_cast<unsigned char>(bytes[0]);
  const auto b1 = static_cast<unsigned char>(bytes[1]);
  if ((b0 & 0x70) != 0) {
    why = "reserved bits set";
    return ParseState::malformed;
  }
  const auto op = static_cast<std::uint8_t>(b0 & 0x0F);
  if ((op > 0x2 && op < 0x8) || op > 0xA) {
    why = "unknown opcode";
    return ParseState::malformed;
  }
  FrameHeader h;
  h.fin = (b0 & 0x80) != 0;
  h.opcode = static_cast<Opcode>(op);
  h.masked = (b1 & 0x80) != 0;
  std::size_t size = 2;
  std::uint64_t length = b1 & 0x7F;
  if (length >= 126) {
    const std::size_t extra = length == 126 ? 2 : 8;
    if (bytes.size() < size + extra) return ParseState::need_more;
    length = 0;
    for (std::size_t i = 0; i < extra; ++i) length = length << 8 | static_cast<unsigned char>(bytes[size + i]);
    size += extra;
    if (length >> 63 != 0) {
      why = "frame length out of range";
      return ParseState::malformed;
    }
  }
  if (is_control(h.opcode) && (!h.fin || length > kMaxControlPayload)) {
    why = "fragmented or oversized control frame";
    return ParseState::malformed;
  }
  if (h.masked) {
    if (bytes.size() < size + 4) return ParseState::need_more;
    std::memcpy(h.key, bytes.data() + size, 4);
    size += 4;
  }
  h.length = length;
  h.size = size;
  out = h;
  return ParseState::frame;
}

void apply_mask(char* data, std::size_t size, const unsigned char key[4], std::uint64_t offset) {
  // The key rotated to where this piece starts, then 8 bytes at a time.
  unsigned char k[4];
  for (std::size_t i = 0; i < 4; ++i) k[i] = key[(offset + i) & 3];
  std::uint64_t wide;
  unsigned char pattern[8] = {k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]};
  std::memcpy(&wide, pattern, 8);
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, data + i, 8);
    word ^= wide;
    std::memcpy(data + i, &word, 8);
  }
  for (; i < size; ++i) data[i] = static_cast<char>(static_cast<unsigned char>(data[i]) ^ k[i & 3]);
}

std::size_t write_header(unsigned char out[kMaxHeaderSize], Opcode opcode, std::uint64_t length,
                         const unsigned char* key) {
  std::size_t size = 0;
  out[size++] = static_cast<unsigned char>(0x80 | static_cast<std::uint8_t>(opcode));
  const unsigned char mask_bit = key ? 0x80 : 0x00;
  if (length < 126) {
    out[size++] = static_cast<unsigned char>(mask_bit | length);
  } else if (length <= 0xFFFF) {
    out[size++] = mask_bit | 126;
    for (int shift = 8; shift >= 0; shift -= 8) out[size++] = static_cast<unsigned char>(length >> shift);
  } else {
    out[size++] = mask_bit | 127;
    for (int shift = 56; shift >= 0; shift -= 8) out[size++] = static_cast<unsigned char>(length >> shift);
  }
  if (key) {
    std::memcpy(out + size, key, 4);
    size += 4;
  }
  return size;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string payload;
  payload += static_cast<char>(code >> 8);
  payload += static_cast<char>(code & 0xFF);
  // Cut to fit, never inside a UTF-8 sequence: the cut moves back until
  // the first byte left out is not a continuation byte.
  if (reason.size() > kMaxControlPayload - 2) {
    std::size_t cut = kMaxControlPayload - 2;
    while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  payload += reason;
  return payload;
}

bool parse_close_payload(std::string_view payload, std::uint16_t& code, std::string& reason) {
  reason.clear();
  if (payload.empty()) {
    code = 1005;
    return true;
  }
  if (payload.size() == 1) return false;
  code = static_cast<std::uint16_t>(static_cast<unsigned char>(payload[0]) << 8 | static_cast<unsigned char>(payload[1]));
  const bool sendable = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
  if (!sendable) return false;
  reason.assign(payload.substr(2));
  return true;
}

}  // namespace paddock::ws
