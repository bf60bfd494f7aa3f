#include "common/ws_frame.hpp"

#include <gtest/gtest.h>

#include <string>

namespace paddock::ws {
namespace {

FrameHeader parsed(const std::string& bytes) {
  FrameHeader h;
  std::string why;
  EXPECT_EQ(parse_header(bytes, h, why), ParseState::frame) << why;
  return h;
}

ParseState state_of(const std::string& bytes) {
  FrameHeader h;
  std::string why;
  return parse_header(bytes, h, why);
}

TEST(WsFrame, HeadersRoundTripAtEveryLengthForm) {
  const unsigned char key[4] = {1, 2, 3, 4};
  for (std::uint64_t length : {0ull, 125ull, 126ull, 65535ull, 65536ull, 1ull << 40}) {
    for (const unsigned char* k : {static_cast<const unsigned char*>(nullptr), key}) {
      unsigned char out[kMaxHeaderSize];
      const auto size = write_header(out, Opcode::binary, length, k);
      const auto h = parsed(std::string(reinterpret_cast<const char*>(out), size));
      EXPECT_EQ(h.length, length);
      EXPECT_EQ(h.size, size);
      EXPECT_EQ(h.masked, k != nullptr);
      EXPECT_TRUE(h.fin);
      EXPECT_EQ(h.opcode, Opcode::binary);
      // One byte short of the header is never a frame.
      EXPECT_EQ(state_of(std::string(reinterpret_cast<const char*>(out), size - 1)), ParseState::need_more);
    }
  }
}

TEST(WsFrame, RefusesWhatNoPeerMaySend) {
  EXPECT_EQ(state_of(std::string("\xC2\x00", 2)), ParseState::malformed) << "RSV1 without an extension";
  EXPECT_EQ(state_of(std::string("\x83\x00", 2)), ParseState::malformed) << "reserved opcode";
  EXPECT_EQ(state_of(std::string("\x8B\x00", 2)), ParseState::malformed) << "reserved control opcode";
  EXPECT_EQ(state_of(std::string("\x09\x00", 2)), ParseState::malformed) << "fragmented ping";
  EXPECT_EQ(state_of(std::string("\x89\x7E\x00\x7E", 4)), ParseState::malformed) << "126-byte ping";
  EXPECT_EQ(state_of(std::string("\x82\x7F\x80\x00\x00\x00\x00\x00\x00\x00", 10)), ParseState::malformed)
      << "length with the top bit set";
}

TEST(WsFrame, MaskingInPiecesEqualsMaskingWhole) {
  const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 7);
  std::string whole = data;
  apply_mask(whole.data(), whole.size(), key, 0);
  for (std::size_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(static_cast<unsigned char>(whole[i]), static_cast<unsigned char>(data[i]) ^ key[i % 4]);
  }
  std::string pieces = data;
  for (std::size_t at = 0, step = 1; at < pieces.size(); at += step, step = step * 3 % 17 + 1) {
    const auto n = std::min(step, pieces.size() - at);
    apply_mask(pieces.data() + at, n, key, at);
  }
  EXPECT_EQ(pieces, whole);
}

TEST(WsFrame, ClosePayloads) {
  std::uint16_t code = 0;
  std::string reason;
  ASSERT_TRUE(parse_close_payload(close_payload(4403, "host deactivated"), code, reason));
  EXPECT_EQ(code, 4403);
  EXPECT_EQ(reason, "host deactivated");
  ASSERT_TRUE(parse_close_payload("", code, reason));
  EXPECT_EQ(code, 1005);
  EXPECT_FALSE(parse_close_payload("\x03", code, reason)) << "one byte";
  EXPECT_FALSE(parse_close_payload(std::string("\x03\xED", 2), code, reason)) << "1005 may not be sent";
  EXPECT_FALSE(parse_close_payload(std::string("\x00\x10", 2), code, reason)) << "below 1000";
  // A long reason is cut to fit a control frame, never inside a character.
  std::string long_reason(122, 'a');
  long_reason += "\xC3\xA9\xC3\xA9";  // é é: the cut at 123 falls inside the first
  const auto payload = close_payload(1000, long_reason);
  EXPECT_LE(payload.size(), kMaxControlPayload);
  ASSERT_TRUE(parse_close_payload(payload, code, reason));
  EXPECT_EQ(reason, std::string(122, 'a'));
}

}  // namespace
}  // namespace paddock::ws
