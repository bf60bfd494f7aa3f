#pragma once
// Request bodies: parsing untrusted bytes into JSON and validating them
// against a TypeDef (api-conventions.md, "Writes" and "Errors").
// Every function here is pure and thread-safe, and none throws.

#include "server/api_error.hpp"
#include "server/schema.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace paddock::server {

// Deepest nesting of arrays/objects accepted in a body; deeper input would
// let a peer exhaust the stack of every recursive JSON walk.
inline constexpr std::size_t kMaxJsonDepth = 64;

// Parses a request body whatever its Content-Type. Empty or whitespace-only
// is `{}`. Malformed JSON, invalid UTF-8 or nesting deeper than
// kMaxJsonDepth is 400 InvalidBodyContent with a short message that never
// echoes the body. The result may be any JSON value (validate_input
// insists on an object).
ApiResult<nlohmann::json> parse_json_body(std::string_view body);

enum class InputMode {
  create,  // POST a collection: fields with create=true, required + defaults apply
  update,  // PUT a resource: fields with update=true, nothing required, no defaults
  action,  // POST an action: every field of the input type, required + defaults apply
};

// Checks `body` against `type` and returns the normalized object holding only
// the accepted fields (unknown fields and fields not writable in `mode` are
// dropped). Normalization: dates become integer epoch milliseconds, floats
// become doubles, integral floats given for int fields become integers.
// Errors: 400 InvalidBodyContent when `body` is not an object or nests too
// deeply; 422 MissingRequired, InvalidType, InvalidOption, MinLimitExceeded,
// MaxLimitExceeded (numeric range and string length in code points, array
// length) and InvalidCharacters (valid_chars, or a control character other
// than \t \n \r, or invalid UTF-8, in any string anywhere in the body), each
// with the field's name as fieldName.
ApiResult<nlohmann::json> validate_input(const TypeDef& type, const nlohmann::json& body,
                                         InputMode mode);

// A date as a client may give it: RFC 3339 ("2026-11-22T07:00:00Z",
// "2026-11-22T08:00:00.5+01:00", via time_util::parse_rfc3339) or epoch
// milliseconds as a decimal integer ("1795330800000"). nullopt otherwise.
std::optional<std::int64_t> parse_date(std::string_view text);

// True when `s` is valid UTF-8 free of control characters other than
// tab, LF and CR (C0, DEL and C1 controls are rejected).
bool is_clean_text(std::string_view s);

}  // namespace paddock::server
