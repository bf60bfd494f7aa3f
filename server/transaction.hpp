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

template <class F>
auto write_tx(db::Database& db, F&& fn) -> ApiResult<std::invoke_result_t<F, db::Connection&>> {
  using T = std::invoke_result_t<F, db::Connection&>;
  std::optional<ApiError> api_error;
  auto result = db.write([&](db::Connection& c) -> T {
    try {
      return fn(c);
    } catch (const ApiAbort& e) {
      api_error = e.api_error;
      throw;
    }
  });
  if (api_error) return *api_error;
  if (!result) return from_error(result.error());
  return std::move(*result);
}

}  // namespace paddock::server
