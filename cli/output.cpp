#include "cli/output.hpp"

#include <array>
#include <cmath>
#include <cstdio>

namespace paddock::cli {

namespace {

std::string scaled(double value, double base, const std::array<const char*, 6>& units) {
  std::size_t unit = 0;
  while (std::fabs(value) >= base && unit + 1 < units.size()) {
    value /= base;
    ++unit;
  }
  char buf[64];
  if (unit == 0) {
    std::snprintf(buf, sizeof buf, "%.0f%s", value, units[unit]);
  } else {
    const int decimals = std::fabs(value) < 10 ? 2 : std::fabs(value) < 100 ? 1 : 0;
    std::snprintf(buf, sizeof buf, "%.*f%s", decimals, value, units[unit]);
  }
  return buf;
}

}  // namespace

std::string format_bytes(std::optional<double> bytes) {
  if (!bytes || !std::isfinite(*bytes)) return "-";
  return scaled(*bytes, 1024, {"B", "KiB", "MiB", "GiB", "TiB", "PiB"});
}

std::string format_bytes_si(std::optional<double> bytes) {
  if (!bytes || !std::isfinite(*bytes)) return "-";
  return scaled(*bytes, 1000, {"B", "kB", "MB", "GB", "TB", "PB"});
}

std::string format_percent(std::optional<double> percent) {
  if (!percent || !std::isfinite(*percent)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f%%", *percent);
  return buf;
}

std::optional<double> number(const nlohmann::json& object, std::string_view field) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(field);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

std::string cell(const nlohmann::json& object, std::string_view field) {
  if (!object.is_object()) return "-";
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return "-";
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    return s.empty() ? "-" : printable(s);
  }
  return printable(it->dump());
}

void print_json(std::ostream& out, const nlohmann::json& value) {
  out << value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

}  // namespace paddock::cli
