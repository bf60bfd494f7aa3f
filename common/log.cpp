#include "common/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace paddock::log {

bool set_level(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  // from_str answers `off` for anything it does not know.
  if (parsed == spdlog::level::off && level != "off") return false;
  static const bool configured = [] {
    auto logger = spdlog::stderr_color_mt("paddock");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
    spdlog::set_default_logger(logger);
    return true;
  }();
  (void)configured;
  spdlog::set_level(parsed);
  return true;
}

}  // namespace paddock::log
