#include "agent/docker_stream.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace paddock::agent {
namespace {

std::string frame(std::uint8_t stream, const std::string& payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream);
  const auto n = static_cast<std::uint32_t>(payload.size());
  f[4] = static_cast<char>((n >> 24) & 0xff);
  f[5] = static_cast<char>((n >> 16) & 0xff);
  f[6] = static_cast<char>((n >> 8) & 0xff);
  f[7] = static_cast<char>(n & 0xff);
  return f + payload;
}

struct Out {
  std::vector<FrameDemuxer::Message> messages;
  bool malformed = false;
};

// Feeds `bytes` in pieces of the given sizes (cycled), taking every message.
Out run(FrameDemuxer& d, const std::string& bytes, const std::vector<std::size_t>& pieces) {
  Out out;
  std::size_t pos = 0;
  std::size_t i = 0;
  while (pos < bytes.size()) {
    const std::size_t n = std::min(pieces[i++ % pieces.size()], bytes.size() - pos);
    std::string_view input(bytes.data() + pos, n);
    pos += n;
    for (;;) {
      const auto state = d.next(input);
      if (state == FrameDemuxer::State::malformed) {
        out.malformed = true;
        return out;
      }
      if (state == FrameDemuxer::State::need_more) break;
      out.messages.push_back(d.take());
    }
    EXPECT_TRUE(input.empty());
  }
  return out;
}

TEST(FrameDemuxer, OneMessagePerFrameWithItsStream) {
  FrameDemuxer d;
  auto out = run(d, frame(1, "out\n") + frame(2, "err\n") + frame(1, "more\n") + frame(0, "stdin-echo"), {1 << 20});
  ASSERT_EQ(out.messages.size(), 4u);
  EXPECT_EQ(out.messages[0].stream, 1);
  EXPECT_EQ(out.messages[0].payload, "out\n");
  EXPECT_EQ(out.messages[1].stream, 2);
  EXPECT_EQ(out.messages[1].payload, "err\n");
  EXPECT_EQ(out.messages[2].payload, "more\n");
  EXPECT_EQ(out.messages[3].stream, 0);
  for (const auto& m : out.messages) EXPECT_TRUE(m.frame_end);
  EXPECT_TRUE(d.at_boundary());
}

TEST(FrameDemuxer, HeadersAndPayloadsSplitAnywhere) {
  std::string bytes;
  std::vector<std::string> expected;
  for (int i = 0; i < 200; ++i) {
    expected.push_back("line " + std::to_string(i) + std::string(static_cast<std::size_t>(i % 17), 'x') + "\n");
    bytes += frame(static_cast<std::uint8_t>(1 + i % 2), expected.back());
  }
  for (std::size_t piece : {1u, 2u, 3u, 5u, 7u, 8u, 9u, 13u, 4096u}) {
    FrameDemuxer d;
    auto out = run(d, bytes, {piece});
    ASSERT_FALSE(out.malformed);
    ASSERT_EQ(out.messages.size(), expected.size()) << "pieces of " << piece;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(out.messages[i].payload, expected[i]);
      EXPECT_EQ(out.messages[i].stream, 1 + i % 2);
    }
    EXPECT_TRUE(d.at_boundary());
  }
}

TEST(FrameDemuxer, RandomSplitsGiveTheSameMessages) {
  std::mt19937 rng(42);
  std::string bytes;
  std::vector<std::string> expected;
  for (int i = 0; i < 500; ++i) {
    std::string p(rng() % 300 + 1, static_cast<char>('a' + i % 26));
    expected.push_back(p);
    bytes += frame(1, p);
  }
  std::vector<std::size_t> pieces;
  for (int i = 0; i < 64; ++i) pieces.push_back(rng() % 40 + 1);
  FrameDemuxer d;
  auto out = run(d, bytes, pieces);
  ASSERT_EQ(out.messages.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(out.messages[i].payload, expected[i]);
}

TEST(FrameDemuxer, BigFramesAreSplitIntoBoundedMessages) {
  FrameDemuxer d(1000);
  std::string big;
  for (int i = 0; i < 2500; ++i) big += static_cast<char>('0' + i % 10);
  auto out = run(d, frame(2, big) + frame(1, "after"), {333});
  ASSERT_EQ(out.messages.size(), 4u);
  EXPECT_EQ(out.messages[0].payload.size(), 1000u);
  EXPECT_EQ(out.messages[1].payload.size(), 1000u);
  EXPECT_EQ(out.messages[2].payload.size(), 500u);
  EXPECT_FALSE(out.messages[0].frame_end);
  EXPECT_FALSE(out.messages[1].frame_end);
  EXPECT_TRUE(out.messages[2].frame_end);
  EXPECT_EQ(out.messages[0].payload + out.messages[1].payload + out.messages[2].payload, big);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out.messages[static_cast<std::size_t>(i)].stream, 2);
  EXPECT_EQ(out.messages[3].payload, "after");
  EXPECT_EQ(out.messages[3].stream, 1);
}

TEST(FrameDemuxer, DefaultLimitFitsTheServersMessageLimit) {
  FrameDemuxer d;
  const std::string big(3 * 1024 * 1024 + 5, 'z');
  auto out = run(d, frame(1, big), {65536});
  ASSERT_EQ(out.messages.size(), 4u);
  std::size_t total = 0;
  for (const auto& m : out.messages) {
    EXPECT_LE(m.payload.size() + 1, std::size_t{1024} * 1024);  // with the channel byte
    total += m.payload.size();
  }
  EXPECT_EQ(total, big.size());
}

TEST(FrameDemuxer, EmptyFramesAreSkipped) {
  FrameDemuxer d;
  auto out = run(d, frame(1, "") + frame(2, "") + frame(1, "x"), {3});
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].payload, "x");
}

TEST(FrameDemuxer, SystemErrorStreamIsPassedUp) {
  FrameDemuxer d;
  auto out = run(d, frame(3, "log driver failed"), {100});
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].stream, 3);
}

TEST(FrameDemuxer, NonMultiplexedBytesAreMalformed) {
  for (const std::string& bad : {std::string("hello world\n"), std::string("\x05\0\0\0\0\0\0\x01x", 9),
                                 std::string("\x01\0\x01\0\0\0\0\x01x", 9)}) {
    FrameDemuxer d;
    auto out = run(d, bad, {4});
    EXPECT_TRUE(out.malformed);
    std::string_view more("x");
    EXPECT_EQ(d.next(more), FrameDemuxer::State::malformed) << "stays broken";
  }
}

TEST(FrameDemuxer, TruncatedStreamIsNotAtABoundary) {
  FrameDemuxer d;
  auto f = frame(1, "abcdef");
  auto out = run(d, f.substr(0, 10), {10});
  EXPECT_TRUE(out.messages.empty());
  EXPECT_FALSE(d.at_boundary());
  FrameDemuxer h;
  run(h, f.substr(0, 5), {5});
  EXPECT_FALSE(h.at_boundary());
}

TEST(FrameDemuxer, LargestLengthDoesNotOverflow) {
  FrameDemuxer d(16);
  std::string header("\x01\0\0\0\xff\xff\xff\xff", 8);
  std::string_view in(header);
  EXPECT_EQ(d.next(in), FrameDemuxer::State::need_more);
  std::string payload(40, 'p');
  std::string_view p(payload);
  int messages = 0;
  while (d.next(p) == FrameDemuxer::State::message) {
    EXPECT_EQ(d.take().payload.size(), 16u);
    ++messages;
  }
  EXPECT_EQ(messages, 2);
  EXPECT_TRUE(p.empty());
}

}  // namespace
}  // namespace paddock::agent
