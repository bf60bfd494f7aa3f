#pragma once
// Checks on untrusted JSON text before it is parsed.

#include <cstddef>
#include <string_view>

namespace paddock {

// True when arrays and objects in `text` nest at most `max_depth` deep.
// A scan without parsing, so deep input cannot exhaust the parser's stack.
bool json_depth_within(std::string_view text, std::size_t max_depth);

}  // namespace paddock
