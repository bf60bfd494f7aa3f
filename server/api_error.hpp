#pragma once
// The API's error object (api-conventions.md, "Errors") and a Result carrying it.

#include "common/result.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace paddock::server {

struct ApiError {
  int status = 500;
  std::string code = "ServerError";
  std::string message = "internal error";
  std::string field_name;  // empty: none

  nlohmann::json to_json() const;

  static ApiError bad_body(std::string message);  // 400 InvalidBodyContent
  static ApiError unauthorized();                 // 401
  static ApiError forbidden(std::string message = "permission denied");  // 403
  static ApiError not_found();                    // 404
  static ApiError method_not_allowed();           // 405
  static ApiError conflict(std::string message);  // 409
  static ApiError too_large();                    // 413
  // 422 with a fieldName: MissingRequired, InvalidOption, InvalidType, …
  static ApiError invalid(std::string code, std::string field, std::string message);
  static ApiError unavailable(std::string message);  // 503
  static ApiError internal();                        // 500, never with details
};

template <class T>
using ApiResult = Result<T, ApiError>;

// The API's answer for an error from a module's edge.
ApiError from_error(const Error& e);

}  // namespace paddock::server
