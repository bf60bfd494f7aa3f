#pragma once
// Wall-clock helpers: epoch milliseconds and RFC 3339 (UTC, "Z").

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace paddock::time_util {

std::int64_t now_ms();
std::int64_t now_s();
// "2026-11-22T07:00:00Z" (milliseconds shown only when non-zero: ".123Z").
std::string format_rfc3339(std::int64_t epoch_ms);
// Accepts RFC 3339 with "Z" or a numeric offset and optional fractional
// seconds. Returns epoch milliseconds.
std::optional<std::int64_t> parse_rfc3339(std::string_view text);

}  // namespace paddock::time_util
