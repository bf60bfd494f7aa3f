// libFuzzer harness for the WebSocket frame codec (common/ws_frame.*): reads
// the input as a run of frames the way a socket would, and checks what the
// codec promises on every frame it accepts.

#include "common/ws_frame.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace paddock::ws;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  while (!input.empty()) {
    FrameHeader h;
    std::string why;
    const auto state = parse_header(input, h, why);
    if (state == ParseState::malformed) {
      check(!why.empty());
      return 0;
    }
    if (state == ParseState::need_more) return 0;
    check(h.size >= 2 && h.size <= kMaxHeaderSize && h.size <= input.size());
    check(!is_control(h.opcode) || (h.fin && h.length <= kMaxControlPayload));

    // The header written again for the same frame parses to the same fields.
    unsigned char again[kMaxHeaderSize];
    const auto written = write_header(again, h.opcode, h.length, h.masked ? h.key : nullptr);
    FrameHeader back;
    std::string ignored;
    check(parse_header({reinterpret_cast<const char*>(again), written}, back, ignored) == ParseState::frame);
    check(back.opcode == h.opcode && back.length == h.length && back.masked == h.masked && back.size == written);
    check(!h.masked || std::memcmp(back.key, h.key, 4) == 0);

    input.remove_prefix(h.size);
    const auto available = static_cast<std::size_t>(h.length < input.size() ? h.length : input.size());
    std::string payload(input.substr(0, available));
    // Unmasking in two pieces equals unmasking whole, and masking undoes it.
    std::string whole = payload;
    apply_mask(whole.data(), whole.size(), h.key, 0);
    std::string pieces = payload;
    const std::size_t cut = pieces.size() / 3;
    apply_mask(pieces.data(), cut, h.key, 0);
    apply_mask(pieces.data() + cut, pieces.size() - cut, h.key, cut);
    check(pieces == whole);
    apply_mask(whole.data(), whole.size(), h.key, 0);
    check(whole == payload);

    if (h.opcode == Opcode::close && available == h.length) {
      std::uint16_t code = 0;
      std::string reason;
      if (parse_close_payload(payload, code, reason) && code != 1005) {
        std::uint16_t code2 = 0;
        std::string reason2;
        check(parse_close_payload(close_payload(code, reason), code2, reason2));
        check(code2 == code && reason2 == reason);
      }
    }
    input.remove_prefix(available);
  }
  return 0;
}
