#pragma once
// Store transactions from request handlers: an ApiAbort thrown inside rolls
// the transaction back and comes out as that ApiError.

#include "server/api_error.hpp"
#include "server/database.hpp"

#include <optional>
#include <type_traits>

namespace paddock::server {

struct ApiAbort : db::Abort {
  explicit ApiAbort(ApiError e) : db::Abort(Error{Errc::invalid_input, e.message}), api_error(std::move(e)) {}
  ApiError api_error;
};

namespace detail {

template <bool Writer, class F>
auto api_tx(db::Database& db, F&& fn) -> ApiResult<std::invoke_result_t<F, db::Connection&>> {
  using T = std::invoke_result_t<F, db::Connection&>;
  std::optional<ApiError> api_error;
  auto body = [&](db::Connection& c) -> T {
    try {
      return fn(c);
    } catch (const ApiAbort& e) {
      api_error = e.api_error;
      throw;
    }
  };
  auto result = Writer ? db.write(body) : db.read(body);
  if (api_error) return *api_error;
  if (!result) return from_error(result.error());
  return std::move(*result);
}

}  // namespace detail

template <class F>
auto write_tx(db::Database& db, F&& fn) {
  return detail::api_tx<true>(db, std::forward<F>(fn));
}

template <class F>
auto read_tx(db::Database& db, F&& fn) {
  return detail::api_tx<false>(db, std::forward<F>(fn));
}

}  // namespace paddock::server
