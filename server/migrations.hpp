#pragma once
// The store's schema, as an ordered list of migrations. Migration N (1-based)
// moves PRAGMA user_version from N-1 to N; never edit one that has shipped.

#include <string_view>
#include <vector>

namespace paddock::server::db {

const std::vector<std::string_view>& migrations();

}  // namespace paddock::server::db
