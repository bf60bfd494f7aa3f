#pragma once
// Collection queries (api-conventions.md, "A collection"): filters, sort and
// keyset pagination parsed from a request's query parameters, the SQL that
// fetches one page, and the collection's pagination/sort/filters members.
// Everything here is pure and thread-safe; nothing throws.

#include "server/api_error.hpp"
#include "server/schema.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace paddock::server {

// Decoded query parameters in request order; names may repeat.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

// A value bound to a `?` placeholder.
using SqlValue = std::variant<std::nullptr_t, std::int64_t, double, std::string>;

// SQL text with `?` placeholders and the values to bind to them, in order.
// Identifiers in `sql` come only from TypeDefs and values from requests never
// appear in it (the LIMIT is an integer literal formatted here).
struct SqlFragment {
  std::string sql;
  std::vector<SqlValue> params;
};

enum class SortOrder { asc, desc };
enum class PageDirection { next, prev };

// One applied filter. Repeated equals filters on a field merge into one
// condition with several values ("any of").
struct FilterCondition {
  std::string field;                // field name
  std::string modifier;             // "eq", "ne", …, "notnull"
  std::vector<std::string> values;  // as the client gave them; empty for null/notnull
  // How to query it:
  std::string column;
  FieldType type = FieldType::string;
  // The primary key or a reference: the column holds a row id, `values` are
  // API ids (`id_prefix` + row id) and like-filters see that spelling.
  bool is_id = false;
  std::string id_prefix;
  std::vector<SqlValue> params;     // typed values (malformed ids left out)
};

// What a `marker` parameter carries: the row at the page boundary, keyed by
// the sort it was made for. Encoded as base64url(JSON); opaque to clients.
struct Marker {
  std::string sort;        // sort field name
  SortOrder order = SortOrder::asc;
  SqlValue value;          // the boundary row's sort key (NULL already replaced)
  std::int64_t id = 0;     // the boundary row's id
  PageDirection direction = PageDirection::next;
  bool inclusive = false;  // the page includes the boundary row itself
};

std::string encode_marker(const Marker& marker);
// nullopt unless `text` is a well-formed marker. The sort value may be any
// non-null scalar: SQLite orders mixed storage classes consistently.
std::optional<Marker> decode_marker(std::string_view text);

struct ListQuery {
  std::string table;
  std::string id_prefix;
  std::vector<FilterCondition> filters;
  std::string sort_field;  // "created", "id", …
  std::string sort_column;
  FieldType sort_type = FieldType::string;
  bool sort_is_id = false;
  SortOrder order = SortOrder::asc;
  std::optional<Marker> marker;
  std::int64_t limit = 100;
  QueryParams params;  // the request's parameters, for building links

  // True when page_select fetches backwards (a `previous` marker): the
  // fetched rows are in reverse display order (build_page puts them back).
  bool backward() const { return marker && marker->direction == PageDirection::prev; }
};

inline constexpr std::int64_t kDefaultLimit = 100;
inline constexpr std::int64_t kMaxLimit = 1000;

// The id prefix of a type named by its schema id ("project" -> "1p"), for
// reference fields; nullopt for an unknown type.
using IdPrefixOf = std::function<std::optional<std::string>(std::string_view type_id)>;

// Parses `params` for a collection of `type`. Reserved: limit, marker, sort,
// order; names in `ignored` (handled by the caller, e.g. projectId) are
// skipped; parameters with an empty name are skipped. Empty limit, marker,
// sort or order values count as absent. Errors (all 422):
//   InvalidFilter  fieldName = the parameter name: unknown or non-filterable
//                  field, modifier not allowed for it, value not of its type;
//                  fieldName "marker": marker undecodable or for another sort
//   InvalidSort    fieldName "sort" / "order"
//   InvalidType    fieldName "limit": not an integer
//   MinLimitExceeded fieldName "limit": below 1 (above 1000 is clamped)
// Reference fields are stored as the target's row id. With `prefix_of`, a
// reference filter value must be an id of the target type (anything else
// matches nothing, like a malformed `id`); without it, any "<prefix><digits>"
// is taken by its digits and like-filters see the bare row number.
ApiResult<ListQuery> parse_list_query(const TypeDef& type, const QueryParams& params,
                                      const std::set<std::string, std::less<>>& ignored = {},
                                      const IdPrefixOf& prefix_of = {});

// The filters ANDed, each parenthesized; "1=1" when there are none.
SqlFragment where_clause(const ListQuery& query);

// SELECT * FROM "<table>" WHERE (<scope>) AND (<filters>) [AND (<keyset>)]
// ORDER BY <sort key>, "id" LIMIT <limit + 1>. An empty scope.sql means none.
// When query.backward(), the ORDER is reversed: pass the rows to build_page
// as fetched.
SqlFragment page_select(const TypeDef& type, const ListQuery& query, const SqlFragment& scope);

// SELECT COUNT(*) FROM "<table>" WHERE (<scope>) AND (<filters>): the
// collection's total, markers ignored.
SqlFragment count_select(const TypeDef& type, const ListQuery& query, const SqlFragment& scope);

// One page of a collection, ready to render.
struct Page {
  std::vector<nlohmann::json> rows;  // in display order, at most limit
  std::optional<std::string> next_marker, previous_marker;
  nlohmann::json pagination;  // {limit, total, partial, next, previous}
  nlohmann::json sort;        // {name, order, reverse}
  nlohmann::json sort_links;  // {field: url} for every sortable field
  nlohmann::json filters;     // {field: null | [{modifier, value}]} for every filterable field
};

// Assembles the page from the rows page_select returned (JSON objects keyed
// by column, each with an integer "id" and the sort column). `base_url` is
// the collection URL without a query; links repeat the request's other
// parameters, percent-encoded. `total` is null in the output when absent.
Page build_page(const TypeDef& type, const ListQuery& query, std::vector<nlohmann::json> fetched,
                std::optional<std::int64_t> total, std::string_view base_url);

// `base_url` plus `params` as an application/x-www-form-urlencoded query
// (RFC 3986 unreserved characters kept, everything else %XX).
std::string url_with_query(std::string_view base_url, const QueryParams& params);

}  // namespace paddock::server
