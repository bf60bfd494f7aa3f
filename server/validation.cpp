#include "server/validation.hpp"

#include "common/time_util.hpp"

#include <algorithm>
#include <bitset>
#include <charconv>
#include <cmath>
#include <limits>
#include <new>
#include <utility>
#include <vector>

namespace paddock::server {

using nlohmann::json;

namespace {

// ---------------------------------------------------------------- UTF-8 --

// Decodes one code point at `i`; advances `i`. Returns -1 for ill-formed
// input (overlong forms, surrogates, beyond U+10FFFF, truncated sequences).
long decode_utf8(std::string_view s, std::size_t& i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) {
    ++i;
    return c;
  }
  std::size_t len = 0;
  long cp = 0;
  long min = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2; cp = c & 0x1F; min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3; cp = c & 0x0F; min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4; cp = c & 0x07; min = 0x10000;
  } else {
    return -1;
  }
  if (s.size() - i < len) return -1;
  for (std::size_t k = 1; k < len; ++k) {
    const unsigned char cc = byte(i + k);
    if ((cc & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  i += len;
  return cp;
}

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (decode_utf8(s, i) < 0) return false;
  }
  return true;
}

// Code points in a string already known to be valid UTF-8.
std::int64_t code_points(std::string_view s) {
  std::int64_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// ----------------------------------------------------------------- dates --

std::optional<std::int64_t> parse_epoch_ms(std::string_view s) {
  if (s.empty()) return std::nullopt;
  const std::size_t digits_from = s[0] == '-' ? 1 : 0;
  if (digits_from == s.size()) return std::nullopt;
  for (std::size_t k = digits_from; k < s.size(); ++k) {
    if (s[k] < '0' || s[k] > '9') return std::nullopt;
  }
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// ------------------------------------------------------------ valid_chars --

// The set of bytes a "regex character class body" such as "a-zA-Z0-9_.-"
// admits. Bytes >= 0x80 (non-ASCII text) are never in it.
class CharClass {
 public:
  explicit CharClass(std::string_view body) {
    std::size_t i = 0;
    bool negate = false;
    if (!body.empty() && body[0] == '^') {
      negate = true;
      ++i;
    }
    const auto next = [&]() -> unsigned char {
      if (body[i] == '\\' && i + 1 < body.size()) {
        i += 2;
        return static_cast<unsigned char>(body[i - 1]);
      }
      return static_cast<unsigned char>(body[i++]);
    };
    while (i < body.size()) {
      const unsigned char lo = next();
      if (i + 1 < body.size() && body[i] == '-') {
        ++i;
        const unsigned char hi = next();
        for (unsigned c = lo; c <= hi; ++c) set_.set(c);
      } else {
        set_.set(lo);
      }
    }
    if (negate) set_.flip();
    for (unsigned c = 0x80; c < 0x100; ++c) set_.reset(c);
  }

  bool admits(std::string_view s) const {
    return std::all_of(s.begin(), s.end(),
                       [&](char c) { return set_.test(static_cast<unsigned char>(c)); });
  }

 private:
  std::bitset<256> set_;
};

// ------------------------------------------------------------ validation --

ApiError invalid_type(const FieldDef& f, std::string message) {
  return ApiError::invalid("InvalidType", f.name, std::move(message));
}

// Walks the whole body without recursion: nesting depth, and every string
// (keys included) must be clean text.
std::optional<ApiError> check_body_strings(const json& body) {
  struct Item {
    const json* value;
    std::size_t depth;
    const std::string* top_key;
  };
  std::vector<Item> stack;
  for (const auto& [key, value] : body.items()) {
    if (!is_clean_text(key)) {
      return ApiError::invalid("InvalidCharacters", "", "field names must be clean UTF-8 text");
    }
    stack.push_back({&value, 2, &key});
  }
  while (!stack.empty()) {
    const Item item = stack.back();
    stack.pop_back();
    const json& v = *item.value;
    if (v.is_string()) {
      if (!is_clean_text(v.get_ref<const std::string&>())) {
        return ApiError::invalid("InvalidCharacters", *item.top_key,
                                 "strings must be UTF-8 without control characters");
      }
    } else if (v.is_structured()) {
      if (item.depth > kMaxJsonDepth) return ApiError::bad_body("JSON nesting is too deep");
      if (v.is_object()) {
        for (const auto& [key, child] : v.items()) {
          if (!is_clean_text(key)) {
            return ApiError::invalid("InvalidCharacters", *item.top_key,
                                     "keys must be UTF-8 without control characters");
          }
          stack.push_back({&child, item.depth + 1, item.top_key});
        }
      } else {
        for (const json& child : v) stack.push_back({&child, item.depth + 1, item.top_key});
      }
    }
  }
  return std::nullopt;
}

std::optional<ApiError> check_range(const FieldDef& f, double v) {
  if (f.min && v < static_cast<double>(*f.min)) {
    return ApiError::invalid("MinLimitExceeded", f.name,
                             "must be at least " + std::to_string(*f.min));
  }
  if (f.max && v > static_cast<double>(*f.max)) {
    return ApiError::invalid("MaxLimitExceeded", f.name,
                             "must be at most " + std::to_string(*f.max));
  }
  return std::nullopt;
}

std::optional<ApiError> check_range(const FieldDef& f, std::int64_t v) {
  if (f.min && v < *f.min) {
    return ApiError::invalid("MinLimitExceeded", f.name,
                             "must be at least " + std::to_string(*f.min));
  }
  if (f.max && v > *f.max) {
    return ApiError::invalid("MaxLimitExceeded", f.name,
                             "must be at most " + std::to_string(*f.max));
  }
  return std::nullopt;
}

std::optional<ApiError> check_length(const FieldDef& f, std::int64_t n, const char* unit) {
  if (f.min_length && n < *f.min_length) {
    return ApiError::invalid("MinLimitExceeded", f.name,
                             "must have at least " + std::to_string(*f.min_length) + " " + unit);
  }
  if (f.max_length && n > *f.max_length) {
    return ApiError::invalid("MaxLimitExceeded", f.name,
                             "must have at most " + std::to_string(*f.max_length) + " " + unit);
  }
  return std::nullopt;
}

std::optional<std::int64_t> as_int64(const json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<std::int64_t>();
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_float()) {
    // 2.0 from a client that only has doubles is an integer; 1.5 is not.
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::trunc(d) != d || d < -9.2e18 || d > 9.2e18) return std::nullopt;
    return static_cast<std::int64_t>(d);
  }
  return std::nullopt;
}

ApiResult<json> check_string(const FieldDef& f, const json& v) {
  if (!v.is_string()) return invalid_type(f, "must be a string");
  const auto& s = v.get_ref<const std::string&>();
  if (auto err = check_length(f, code_points(s), "characters")) return *err;
  if (!f.valid_chars.empty() && !CharClass(f.valid_chars).admits(s)) {
    return ApiError::invalid("InvalidCharacters", f.name,
                             "may only contain characters in [" + f.valid_chars + "]");
  }
  return v;
}

ApiResult<json> check_date(const FieldDef& f, const json& v) {
  std::optional<std::int64_t> ms;
  if (v.is_string()) {
    ms = parse_date(v.get_ref<const std::string&>());
  } else if (v.is_number_integer()) {
    ms = as_int64(v);
  }
  if (!ms) return invalid_type(f, "must be an RFC 3339 date or epoch milliseconds");
  if (auto err = check_range(f, *ms)) return *err;
  return json(*ms);
}

// The element type of array[<param>] / map[<param>]; a schema id (not a
// primitive) means embedded objects.
FieldDef element_def(const FieldDef& f) {
  FieldDef e;
  e.name = f.name;
  e.valid_chars = f.valid_chars;
  const std::string& p = f.type_param;
  if (p.empty() || p == "string") e.type = FieldType::string;
  else if (p == "password") e.type = FieldType::password;
  else if (p == "int") e.type = FieldType::int_;
  else if (p == "float") e.type = FieldType::float_;
  else if (p == "boolean") e.type = FieldType::boolean;
  else if (p == "date") e.type = FieldType::date;
  else if (p == "json") e.type = FieldType::json_;
  else if (p.rfind("reference", 0) == 0) e.type = FieldType::reference;
  else e.type = FieldType::map, e.type_param = "json";  // an embedded object
  return e;
}

ApiResult<json> check_value(const FieldDef& f, const json& v);

ApiResult<json> check_elements(const FieldDef& f, const json& container) {
  const FieldDef e = element_def(f);
  json out = container.is_array() ? json::array() : json::object();
  for (auto it = container.begin(); it != container.end(); ++it) {
    if (it->is_null()) return invalid_type(f, "elements must not be null");
    auto checked = check_value(e, *it);
    if (!checked) return checked.error();
    if (out.is_array()) out.push_back(std::move(*checked));
    else out[it.key()] = std::move(*checked);
  }
  return out;
}

ApiResult<json> check_value(const FieldDef& f, const json& v) {
  switch (f.type) {
    case FieldType::string:
    case FieldType::password:
      return check_string(f, v);
    case FieldType::reference:
      if (!v.is_string()) return invalid_type(f, "must be a resource id string");
      return v;
    case FieldType::int_: {
      if (!v.is_number()) return invalid_type(f, "must be an integer");
      const std::optional<std::int64_t> i = as_int64(v);
      if (!i) return invalid_type(f, "must be an integer");
      if (auto err = check_range(f, *i)) return *err;
      return json(*i);
    }
    case FieldType::float_: {
      if (!v.is_number()) return invalid_type(f, "must be a number");
      const double d = v.get<double>();
      if (!std::isfinite(d)) return invalid_type(f, "must be a finite number");
      if (auto err = check_range(f, d)) return *err;
      return json(d);
    }
    case FieldType::boolean:
      if (!v.is_boolean()) return invalid_type(f, "must be true or false");
      return v;
    case FieldType::date:
      return check_date(f, v);
    case FieldType::enum_:
      if (!v.is_string()) return invalid_type(f, "must be a string");
      if (std::find(f.options.begin(), f.options.end(), v.get_ref<const std::string&>()) ==
          f.options.end()) {
        return ApiError::invalid("InvalidOption", f.name, "must be one of the field's options");
      }
      return v;
    case FieldType::json_:
      return v;
    case FieldType::array:
      if (!v.is_array()) return invalid_type(f, "must be an array");
      if (auto err = check_length(f, static_cast<std::int64_t>(v.size()), "elements")) return *err;
      return check_elements(f, v);
    case FieldType::map:
      if (!v.is_object()) return invalid_type(f, "must be an object");
      if (auto err = check_length(f, static_cast<std::int64_t>(v.size()), "entries")) return *err;
      if (f.type_param == "json") return v;
      return check_elements(f, v);
  }
  return invalid_type(f, "has an unsupported type");
}

bool accepts(const FieldDef& f, InputMode mode) {
  switch (mode) {
    case InputMode::create: return f.create;
    case InputMode::update: return f.update;
    case InputMode::action: return true;
  }
  return false;
}

}  // namespace

bool is_clean_text(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const long cp = decode_utf8(s, i);
    if (cp < 0) return false;
    if (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') return false;
    if (cp >= 0x7F && cp <= 0x9F) return false;
  }
  return true;
}

std::optional<std::int64_t> parse_date(std::string_view text) {
  if (auto ms = parse_epoch_ms(text)) return ms;
  return time_util::parse_rfc3339(text);
}

ApiResult<json> parse_json_body(std::string_view body) {
  if (std::all_of(body.begin(), body.end(), is_json_space)) return json::object();
  if (!is_valid_utf8(body)) return ApiError::bad_body("request body is not valid UTF-8");

  // Bound the nesting before parsing: everything that later walks the value
  // (copies, dumps, comparisons) recurses once per level.
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return ApiError::bad_body("JSON nesting is too deep");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }

  try {
    return json::parse(body.begin(), body.end());
  } catch (const json::parse_error& e) {
    // nlohmann's own message quotes the input; say only where it broke.
    return ApiError::bad_body("request body is not valid JSON (at byte " +
                              std::to_string(e.byte) + ")");
  } catch (const std::bad_alloc&) {
    return ApiError::too_large();
  } catch (...) {
    return ApiError::bad_body("request body is not valid JSON");
  }
}

ApiResult<json> validate_input(const TypeDef& type, const json& body, InputMode mode) {
  if (!body.is_object()) return ApiError::bad_body("body must be a JSON object");
  try {
    if (auto err = check_body_strings(body)) return *err;

    json out = json::object();
    for (const FieldDef& f : type.fields) {
      if (!accepts(f, mode)) continue;
      const auto it = body.find(f.name);
      if (it == body.end()) {
        if (mode == InputMode::update) continue;
        if (f.default_value) {
          // Defaults come from the type tables; normalize them like input
          // (a date default given as text is stored as epoch ms).
          if (f.default_value->is_null()) {
            out[f.name] = nullptr;
          } else {
            auto normalized = check_value(f, *f.default_value);
            if (!normalized) return ApiError::internal();  // a bad TypeDef, not bad input
            out[f.name] = std::move(*normalized);
          }
        } else if (f.required) {
          return ApiError::invalid("MissingRequired", f.name, "field is required");
        }
        continue;
      }
      if (it->is_null()) {
        if (f.nullable) {
          out[f.name] = nullptr;
          continue;
        }
        if (f.required) return ApiError::invalid("MissingRequired", f.name, "field is required");
        return invalid_type(f, "must not be null");
      }
      auto checked = check_value(f, *it);
      if (!checked) return checked.error();
      out[f.name] = std::move(*checked);
    }
    return out;
  } catch (const std::bad_alloc&) {
    return ApiError::too_large();
  } catch (...) {
    return ApiError::internal();
  }
}

}  // namespace paddock::server
