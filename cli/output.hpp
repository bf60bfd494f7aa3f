#pragma once
// Turning resources and samples into what people read: sizes, percentages,
// times, and JSON for `-o json`.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace paddock::cli {

// 1536 -> "1.5KiB" (binary units, as memory is counted); "-" for nullopt.
std::string format_bytes(std::optional<double> bytes);
// 1500 -> "1.5kB" (SI units, as docker stats shows network and block I/O).
std::string format_bytes_si(std::optional<double> bytes);
// 12.345 -> "12.35%"; "-" for nullopt.
std::string format_percent(std::optional<double> percent);

// A field as a number, if it is one.
std::optional<double> number(const nlohmann::json& object, std::string_view field);
// A field for a table cell: strings as they are (control characters
// replaced), numbers printed, "-" for null or absent.
std::string cell(const nlohmann::json& object, std::string_view field);
// Untrusted text made safe for a terminal: control characters become '?'.
std::string printable(std::string_view text);

// `-o json`: pretty, with a final newline.
void print_json(std::ostream& out, const nlohmann::json& value);

}  // namespace paddock::cli
