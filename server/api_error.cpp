#include "server/api_error.hpp"

namespace paddock::server {

nlohmann::json ApiError::to_json() const {
  return {{"type", "error"},
          {"status", status},
          {"code", code},
          {"message", message},
          {"fieldName", field_name.empty() ? nlohmann::json(nullptr) : nlohmann::json(field_name)},
          {"detail", nullptr}};
}

ApiError ApiError::bad_body(std::string message) { return {400, "InvalidBodyContent", std::move(message), {}}; }
ApiError ApiError::unauthorized() { return {401, "Unauthorized", "unauthorized", {}}; }
ApiError ApiError::forbidden(std::string message) { return {403, "PermissionDenied", std::move(message), {}}; }
ApiError ApiError::not_found() { return {404, "NotFound", "not found", {}}; }
ApiError ApiError::method_not_allowed() { return {405, "MethodNotAllowed", "method not allowed", {}}; }
ApiError ApiError::conflict(std::string message) { return {409, "Conflict", std::move(message), {}}; }
ApiError ApiError::too_large() { return {413, "RequestTooLarge", "request body too large", {}}; }
ApiError ApiError::invalid(std::string code, std::string field, std::string message) {
  return {422, std::move(code), std::move(message), std::move(field)};
}
ApiError ApiError::unavailable(std::string message) { return {503, "ServiceUnavailable", std::move(message), {}}; }
ApiError ApiError::internal() { return {500, "ServerError", "internal server error", {}}; }

ApiError from_error(const Error& e) {
  switch (e.code) {
    case Errc::invalid_input: return ApiError::invalid("InvalidOption", "", e.message);
    case Errc::unauthorized: return ApiError::unauthorized();
    case Errc::forbidden: return ApiError::forbidden(e.message);
    case Errc::not_found: return ApiError::not_found();
    case Errc::conflict: return ApiError::conflict(e.message);
    case Errc::unavailable: return ApiError::unavailable(e.message);
    default: return ApiError::internal();
  }
}

}  // namespace paddock::server
