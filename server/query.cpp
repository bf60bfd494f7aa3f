#include "server/query.hpp"

#include "common/crypto.hpp"
#include "server/validation.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <map>
#include <type_traits>

namespace paddock::server {

using nlohmann::json;

namespace {

constexpr std::array<std::string_view, 11> kModifiers = {
    "eq", "ne", "lt", "lte", "gt", "gte", "prefix", "like", "notlike", "null", "notnull"};

// Markers we make are small; anything much bigger is not one of ours.
constexpr std::size_t kMaxMarkerLength = 8192;

bool is_modifier(std::string_view s) {
  return std::find(kModifiers.begin(), kModifiers.end(), s) != kModifiers.end();
}

bool is_id_field(const FieldDef& f) { return f.name == "id" && f.type == FieldType::string; }

bool is_sortable(const FieldDef& f) {
  if (is_id_field(f)) return true;
  if (!f.sortable || f.column.empty()) return false;
  switch (f.type) {
    case FieldType::string:
    case FieldType::int_:
    case FieldType::float_:
    case FieldType::boolean:
    case FieldType::date:
    case FieldType::enum_:
    case FieldType::reference:
      return true;
    default:
      return false;
  }
}

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// What a NULL sorts as, so (key, id) is a total order keyset comparisons can use.
const char* neutral_literal(FieldType t) {
  switch (t) {
    case FieldType::int_:
    case FieldType::date:
    case FieldType::boolean:
    case FieldType::reference:  // a row id
      return "0";
    case FieldType::float_:
      return "0.0";
    default:
      return "''";
  }
}

SqlValue neutral_value(FieldType t) {
  switch (t) {
    case FieldType::int_:
    case FieldType::date:
    case FieldType::boolean:
    case FieldType::reference:
      return std::int64_t{0};
    case FieldType::float_:
      return 0.0;
    default:
      return std::string();
  }
}

std::string sort_key_sql(const ListQuery& q) {
  if (q.sort_is_id) return "\"id\"";
  return "coalesce(" + quote_ident(q.sort_column) + ", " + neutral_literal(q.sort_type) + ")";
}

std::optional<std::int64_t> parse_int64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  const std::size_t from = s[0] == '-' ? 1 : 0;
  if (from == s.size()) return std::nullopt;
  if (!std::all_of(s.begin() + static_cast<std::ptrdiff_t>(from), s.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view s) {
  if (s.empty()) return std::nullopt;
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// "1t42" -> 42 for prefix "1t"; only the canonical spelling matches. With no
// known prefix, whatever precedes the trailing digits is taken as one.
std::optional<std::int64_t> parse_api_id(const std::optional<std::string>& prefix, std::string_view id) {
  std::string_view digits;
  if (prefix) {
    if (id.size() <= prefix->size() || id.substr(0, prefix->size()) != *prefix) return std::nullopt;
    digits = id.substr(prefix->size());
  } else {
    const std::size_t last = id.find_last_not_of("0123456789");
    if (last == std::string_view::npos || last + 1 == id.size()) return std::nullopt;
    digits = id.substr(last + 1);
  }
  if (digits[0] == '-' || (digits[0] == '0' && digits.size() > 1)) return std::nullopt;
  return parse_int64(digits);
}

std::string escape_like(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

ApiError invalid_filter(const std::string& param, std::string message) {
  // fieldName ends up in a JSON response: keep it valid text.
  return ApiError::invalid("InvalidFilter", is_clean_text(param) ? param : std::string(),
                           std::move(message));
}

// The typed SQL value of a filter's `value`; nullopt if it does not parse.
std::optional<SqlValue> filter_value(const FieldDef& f, std::string_view modifier,
                                     std::string_view value) {
  switch (f.type) {
    case FieldType::string:
    case FieldType::reference:
      return SqlValue(std::string(value));
    case FieldType::enum_:
      if ((modifier == "eq" || modifier == "ne") &&
          std::find(f.options.begin(), f.options.end(), value) == f.options.end()) {
        return std::nullopt;
      }
      return SqlValue(std::string(value));
    case FieldType::int_:
      if (auto i = parse_int64(value)) return SqlValue(*i);
      return std::nullopt;
    case FieldType::float_:
      if (auto d = parse_double(value)) return SqlValue(*d);
      return std::nullopt;
    case FieldType::date:
      if (auto ms = parse_date(value)) return SqlValue(*ms);
      return std::nullopt;
    case FieldType::boolean:
      if (value == "true") return SqlValue(std::int64_t{1});
      if (value == "false") return SqlValue(std::int64_t{0});
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

const char* type_word(FieldType t) {
  switch (t) {
    case FieldType::int_: return "an integer";
    case FieldType::float_: return "a number";
    case FieldType::date: return "an RFC 3339 date or epoch milliseconds";
    case FieldType::boolean: return "true or false";
    case FieldType::enum_: return "one of the field's options";
    default: return "text";
  }
}

SqlFragment condition_sql(const FilterCondition& c) {
  const std::string col = quote_ident(c.column);
  const std::string& m = c.modifier;
  if (m == "null") return {col + " IS NULL", {}};
  if (m == "notnull") return {col + " IS NOT NULL", {}};

  if (c.is_id && (m == "prefix" || m == "like" || m == "notlike")) {
    // Match against the API spelling of the id, prefix included.
    const std::string expr = "(? || " + col + ")";
    const SqlValue pattern = m == "prefix" ? SqlValue(escape_like(c.values[0]) + "%")
                                           : SqlValue(c.values[0]);
    const std::string op = m == "notlike" ? " NOT LIKE ? ESCAPE '\\'" : " LIKE ? ESCAPE '\\'";
    return {expr + op, {SqlValue(c.id_prefix), pattern}};
  }
  if (c.is_id && c.params.empty()) {
    // Malformed ids name no row.
    return {m == "ne" ? "1=1" : "0=1", {}};
  }

  if (m == "eq") {
    if (c.params.size() == 1) return {col + " = ?", c.params};
    std::string sql = col + " IN (";
    for (std::size_t k = 0; k < c.params.size(); ++k) sql += k == 0 ? "?" : ", ?";
    sql += ")";
    return {std::move(sql), c.params};
  }
  // NULL is "not equal" to any value and "not like" any pattern.
  if (m == "ne") return {col + " IS NOT ?", c.params};
  if (m == "lt") return {col + " < ?", c.params};
  if (m == "lte") return {col + " <= ?", c.params};
  if (m == "gt") return {col + " > ?", c.params};
  if (m == "gte") return {col + " >= ?", c.params};
  if (m == "prefix") {
    return {col + " LIKE ? ESCAPE '\\'",
            {SqlValue(escape_like(std::get<std::string>(c.params[0])) + "%")}};
  }
  if (m == "like") return {col + " LIKE ? ESCAPE '\\'", c.params};
  if (m == "notlike") return {"(" + col + " IS NULL OR " + col + " NOT LIKE ? ESCAPE '\\')", c.params};
  return {"0=1", {}};  // unreachable: parse_list_query admits only known modifiers
}

void append(SqlFragment& into, const SqlFragment& part) {
  into.sql += part.sql;
  into.params.insert(into.params.end(), part.params.begin(), part.params.end());
}

json sql_value_json(const SqlValue& v) {
  return std::visit(
      [](const auto& x) -> json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::nullptr_t>) return nullptr;
        else return x;
      },
      v);
}

// The sort key of a fetched row, as the SQL coalesce computes it.
SqlValue row_sort_value(const ListQuery& q, const json& row) {
  if (q.sort_is_id) return row.value("id", std::int64_t{0});
  const auto it = row.find(q.sort_column);
  if (it == row.end() || it->is_null()) return neutral_value(q.sort_type);
  if (it->is_boolean()) return std::int64_t{it->get<bool>() ? 1 : 0};
  if (it->is_number_unsigned()) return static_cast<std::int64_t>(it->get<std::uint64_t>());
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_number_float()) return it->get<double>();
  if (it->is_string()) return it->get<std::string>();
  return neutral_value(q.sort_type);
}

std::int64_t row_id(const json& row) {
  const auto it = row.find("id");
  if (it == row.end() || !it->is_number_integer()) return 0;
  return it->get<std::int64_t>();
}

std::string sort_field_default(const TypeDef& type) {
  const FieldDef* created = type.find_field("created");
  return created && is_sortable(*created) ? "created" : "id";
}

QueryParams without(const QueryParams& params, std::initializer_list<std::string_view> names) {
  QueryParams out;
  for (const auto& p : params) {
    if (std::find(names.begin(), names.end(), p.first) == names.end()) out.push_back(p);
  }
  return out;
}

const char* order_name(SortOrder o) { return o == SortOrder::asc ? "asc" : "desc"; }

}  // namespace

// ---------------------------------------------------------------- markers --

std::string encode_marker(const Marker& m) {
  json j = {{"s", m.sort},
            {"o", order_name(m.order)},
            {"i", m.id},
            {"d", m.direction == PageDirection::next ? "next" : "prev"}};
  // Stored text is not necessarily valid UTF-8 (and JSON cannot carry it):
  // such a key travels as base64url of its bytes.
  const auto* text = std::get_if<std::string>(&m.value);
  if (text && !is_clean_text(*text)) j["b"] = crypto::base64url_encode(*text);
  else j["v"] = sql_value_json(m.value);
  if (m.inclusive) j["x"] = true;
  return crypto::base64url_encode(j.dump());
}

std::optional<Marker> decode_marker(std::string_view text) {
  if (text.empty() || text.size() > kMaxMarkerLength) return std::nullopt;
  const std::optional<std::string> raw = crypto::base64url_decode(text);
  if (!raw) return std::nullopt;
  ApiResult<json> parsed = parse_json_body(*raw);
  if (!parsed || !parsed->is_object()) return std::nullopt;
  const json& j = *parsed;
  const auto s = j.find("s"), o = j.find("o"), v = j.find("v"), b = j.find("b"), i = j.find("i"),
             d = j.find("d"), x = j.find("x");
  if (s == j.end() || !s->is_string() || o == j.end() || !o->is_string() ||
      (v == j.end()) == (b == j.end()) || i == j.end() || !i->is_number_integer() || d == j.end() ||
      !d->is_string()) {
    return std::nullopt;
  }
  Marker m;
  m.sort = s->get<std::string>();
  const std::string order = o->get<std::string>(), dir = d->get<std::string>();
  if (order == "asc") m.order = SortOrder::asc;
  else if (order == "desc") m.order = SortOrder::desc;
  else return std::nullopt;
  if (dir == "next") m.direction = PageDirection::next;
  else if (dir == "prev") m.direction = PageDirection::prev;
  else return std::nullopt;
  if (i->is_number_unsigned() &&
      i->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return std::nullopt;
  }
  m.id = i->get<std::int64_t>();
  if (b != j.end()) {
    if (!b->is_string()) return std::nullopt;
    std::optional<std::string> bytes = crypto::base64url_decode(b->get<std::string>());
    if (!bytes) return std::nullopt;
    m.value = std::move(*bytes);
  } else if (v->is_number_unsigned()) {
    if (v->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    m.value = static_cast<std::int64_t>(v->get<std::uint64_t>());
  } else if (v->is_number_integer()) {
    m.value = v->get<std::int64_t>();
  } else if (v->is_number_float()) {
    m.value = v->get<double>();
  } else if (v->is_string()) {
    m.value = v->get<std::string>();
  } else {
    return std::nullopt;
  }
  if (x != j.end()) {
    if (!x->is_boolean()) return std::nullopt;
    m.inclusive = x->get<bool>();
  }
  return m;
}

// ---------------------------------------------------------------- parsing --

ApiResult<ListQuery> parse_list_query(const TypeDef& type, const QueryParams& params,
                                      const std::set<std::string, std::less<>>& ignored,
                                      const IdPrefixOf& prefix_of) {
  ListQuery q;
  q.table = type.table;
  q.id_prefix = type.id_prefix;
  q.params = params;

  std::optional<std::string> limit_text, marker_text, sort_text, order_text;
  std::map<std::string, std::size_t, std::less<>> equals_index;  // field -> filters[k]

  for (const auto& [name, value] : params) {
    if (name.empty() || ignored.contains(name)) continue;
    // Last one wins for the reserved names; an empty value means "not given".
    if (name == "limit") { limit_text = value.empty() ? std::nullopt : std::optional(value); continue; }
    if (name == "marker") { marker_text = value.empty() ? std::nullopt : std::optional(value); continue; }
    if (name == "sort") { sort_text = value.empty() ? std::nullopt : std::optional(value); continue; }
    if (name == "order") { order_text = value.empty() ? std::nullopt : std::optional(value); continue; }

    // "name_prefix" is field "name" with modifier "prefix" unless a field is
    // literally called that; a suffix that is no modifier is part of the name.
    const FieldDef* f = type.find_field(name);
    std::string modifier = "eq";
    if (!f) {
      if (const auto cut = name.rfind('_'); cut != std::string::npos) {
        const std::string_view suffix = std::string_view(name).substr(cut + 1);
        if (is_modifier(suffix)) {
          f = type.find_field(std::string_view(name).substr(0, cut));
          modifier = std::string(suffix);
        }
      }
    }
    if (!f) return invalid_filter(name, "unknown field");
    const std::vector<std::string> allowed = modifiers_for(*f);
    if (allowed.empty()) return invalid_filter(name, "field " + f->name + " is not filterable");
    if (std::find(allowed.begin(), allowed.end(), modifier) == allowed.end()) {
      return invalid_filter(name, "modifier " + modifier + " is not allowed for field " + f->name);
    }

    FilterCondition c;
    c.field = f->name;
    c.modifier = modifier;
    c.column = f->column;
    c.type = f->type;
    std::optional<std::string> prefix;  // of the ids in this field, if known
    if (is_id_field(*f)) {
      c.is_id = true;
      c.column = "id";
      prefix = type.id_prefix;
    } else if (f->type == FieldType::reference) {
      c.is_id = true;
      if (prefix_of) prefix = prefix_of(f->type_param);
    }
    c.id_prefix = prefix.value_or("");
    if (modifier != "null" && modifier != "notnull") {
      if (!is_clean_text(value)) {
        return invalid_filter(name, "value must be UTF-8 text without control characters");
      }
      if (c.is_id) {
        if (modifier == "eq" || modifier == "ne") {
          if (auto id = parse_api_id(prefix, value)) c.params.emplace_back(*id);
        }
      } else {
        std::optional<SqlValue> v = filter_value(*f, modifier, value);
        if (!v) return invalid_filter(name, std::string("value must be ") + type_word(f->type));
        c.params.push_back(std::move(*v));
      }
      c.values.push_back(value);
    }

    if (modifier == "eq") {
      // A repeated equals filter means "any of".
      if (const auto it = equals_index.find(c.field); it != equals_index.end()) {
        FilterCondition& prev = q.filters[it->second];
        prev.values.push_back(c.values[0]);
        prev.params.insert(prev.params.end(), c.params.begin(), c.params.end());
        continue;
      }
      equals_index.emplace(c.field, q.filters.size());
    }
    q.filters.push_back(std::move(c));
  }

  if (limit_text) {
    const std::string& t = *limit_text;
    const bool digits = !t.empty() && std::all_of(t.begin() + (t[0] == '-' ? 1 : 0), t.end(),
                                                   [](char ch) { return ch >= '0' && ch <= '9'; }) &&
                        t != "-";
    if (!digits) return ApiError::invalid("InvalidType", "limit", "limit must be an integer");
    if (t[0] == '-') return ApiError::invalid("MinLimitExceeded", "limit", "limit must be at least 1");
    const std::optional<std::int64_t> n = parse_int64(t);
    // Digits that overflow are simply a very large limit.
    q.limit = n ? *n : kMaxLimit;
    if (q.limit < 1) return ApiError::invalid("MinLimitExceeded", "limit", "limit must be at least 1");
    q.limit = std::min(q.limit, kMaxLimit);
  }

  q.sort_field = sort_text ? *sort_text : sort_field_default(type);
  if (q.sort_field == "id") {
    q.sort_is_id = true;
    q.sort_column = "id";
    q.sort_type = FieldType::int_;
  } else {
    const FieldDef* f = type.find_field(q.sort_field);
    if (!f || !is_sortable(*f)) {
      return ApiError::invalid("InvalidSort", "sort", "cannot sort by that field");
    }
    q.sort_is_id = is_id_field(*f);
    q.sort_column = f->column;
    q.sort_type = f->type;
  }
  if (order_text) {
    if (*order_text == "asc") q.order = SortOrder::asc;
    else if (*order_text == "desc") q.order = SortOrder::desc;
    else return ApiError::invalid("InvalidSort", "order", "order must be asc or desc");
  }

  if (marker_text) {
    std::optional<Marker> m = decode_marker(*marker_text);
    if (!m) return ApiError::invalid("InvalidFilter", "marker", "marker is not valid");
    if (m->sort != q.sort_field || m->order != q.order) {
      return ApiError::invalid("InvalidFilter", "marker", "marker was made for another sort order");
    }
    if (q.sort_is_id && !std::holds_alternative<std::int64_t>(m->value)) {
      return ApiError::invalid("InvalidFilter", "marker", "marker is not valid");
    }
    q.marker = std::move(m);
  }
  return q;
}

// -------------------------------------------------------------------- SQL --

SqlFragment where_clause(const ListQuery& query) {
  if (query.filters.empty()) return {"1=1", {}};
  SqlFragment out;
  for (const FilterCondition& c : query.filters) {
    if (!out.sql.empty()) out.sql += " AND ";
    out.sql += "(";
    append(out, condition_sql(c));
    out.sql += ")";
  }
  return out;
}

namespace {

SqlFragment scoped_where(const ListQuery& query, const SqlFragment& scope) {
  SqlFragment out{"(", {}};
  if (scope.sql.empty()) out.sql += "1=1";
  else append(out, scope);
  out.sql += ") AND (";
  append(out, where_clause(query));
  out.sql += ")";
  return out;
}

}  // namespace

SqlFragment page_select(const TypeDef& type, const ListQuery& query, const SqlFragment& scope) {
  SqlFragment out{"SELECT * FROM " + quote_ident(type.table) + " WHERE ", {}};
  append(out, scoped_where(query, scope));

  // Fetching backwards walks the display order in reverse.
  const bool ascending = (query.order == SortOrder::asc) != query.backward();
  const std::string key = sort_key_sql(query);
  if (query.marker) {
    std::string op = ascending ? ">" : "<";
    if (query.marker->inclusive) op += "=";
    if (query.sort_is_id) {
      out.sql += " AND (\"id\" " + op + " ?)";
      out.params.emplace_back(query.marker->id);
    } else {
      // Row values: (key, id) compared lexicographically, like the ORDER BY.
      out.sql += " AND ((" + key + ", \"id\") " + op + " (?, ?))";
      out.params.push_back(query.marker->value);
      out.params.emplace_back(query.marker->id);
    }
  }
  const char* dir = ascending ? " ASC" : " DESC";
  out.sql += " ORDER BY ";
  if (!query.sort_is_id) out.sql += key + dir + ", ";
  out.sql += std::string("\"id\"") + dir;
  out.sql += " LIMIT " + std::to_string(query.limit + 1);
  return out;
}

SqlFragment count_select(const TypeDef& type, const ListQuery& query, const SqlFragment& scope) {
  SqlFragment out{"SELECT COUNT(*) FROM " + quote_ident(type.table) + " WHERE ", {}};
  append(out, scoped_where(query, scope));
  return out;
}

// ------------------------------------------------------------------ pages --

std::string url_with_query(std::string_view base_url, const QueryParams& params) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const auto encode = [](std::string& out, std::string_view s) {
    for (const char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.' || c == '_' || c == '~') {
        out += ch;
      } else {
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 0x0F];
      }
    }
  };
  std::string out(base_url);
  char sep = out.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [name, value] : params) {
    out += sep;
    sep = '&';
    encode(out, name);
    out += '=';
    encode(out, value);
  }
  return out;
}

Page build_page(const TypeDef& type, const ListQuery& query, std::vector<json> fetched,
                std::optional<std::int64_t> total, std::string_view base_url) {
  Page page;
  const auto limit = static_cast<std::size_t>(query.limit);
  // page_select fetched one row beyond the page to learn whether more follow.
  const bool more = fetched.size() > limit;
  if (more) fetched.resize(limit);
  if (query.backward()) std::reverse(fetched.begin(), fetched.end());
  page.rows = std::move(fetched);

  const auto marker_at = [&](const json& row, PageDirection dir) {
    return encode_marker({query.sort_field, query.order, row_sort_value(query, row), row_id(row), dir,
                          false});
  };
  // The same boundary, turned around and including the boundary row: for an
  // empty page, the way back must not skip the row the client came from.
  const auto marker_back = [&](PageDirection dir) {
    Marker m = *query.marker;
    m.direction = dir;
    m.inclusive = !m.inclusive;
    return encode_marker(m);
  };

  if (!query.marker) {
    if (more) page.next_marker = marker_at(page.rows.back(), PageDirection::next);
  } else if (!query.backward()) {
    if (more) page.next_marker = marker_at(page.rows.back(), PageDirection::next);
    page.previous_marker = page.rows.empty() ? marker_back(PageDirection::prev)
                                             : marker_at(page.rows.front(), PageDirection::prev);
  } else {
    if (more) page.previous_marker = marker_at(page.rows.front(), PageDirection::prev);
    page.next_marker = page.rows.empty() ? marker_back(PageDirection::next)
                                         : marker_at(page.rows.back(), PageDirection::next);
  }

  const QueryParams rest = without(query.params, {"marker", "limit"});
  const auto page_url = [&](const std::optional<std::string>& marker) -> json {
    if (!marker) return nullptr;
    QueryParams p = rest;
    p.emplace_back("marker", *marker);
    p.emplace_back("limit", std::to_string(query.limit));
    return url_with_query(base_url, p);
  };
  page.pagination = {{"limit", query.limit},
                     {"total", total ? json(*total) : json(nullptr)},
                     {"partial", page.next_marker.has_value() || page.previous_marker.has_value()},
                     {"next", page_url(page.next_marker)},
                     {"previous", page_url(page.previous_marker)}};

  const QueryParams unsorted = without(query.params, {"sort", "order", "marker"});
  QueryParams reverse = unsorted;
  reverse.emplace_back("sort", query.sort_field);
  reverse.emplace_back("order", query.order == SortOrder::asc ? "desc" : "asc");
  page.sort = {{"name", query.sort_field},
               {"order", order_name(query.order)},
               {"reverse", url_with_query(base_url, reverse)}};

  page.sort_links = json::object();
  page.filters = json::object();
  for (const FieldDef& f : type.fields) {
    if (is_sortable(f)) {
      QueryParams p = unsorted;
      p.emplace_back("sort", f.name);
      page.sort_links[f.name] = url_with_query(base_url, p);
    }
    if (!modifiers_for(f).empty()) page.filters[f.name] = nullptr;
  }
  for (const FilterCondition& c : query.filters) {
    json& echo = page.filters[c.field];
    if (echo.is_null()) echo = json::array();
    if (c.values.empty()) {
      echo.push_back({{"modifier", c.modifier}, {"value", nullptr}});
    }
    for (const std::string& v : c.values) echo.push_back({{"modifier", c.modifier}, {"value", v}});
  }
  return page;
}

}  // namespace paddock::server
