#pragma once
// Aligned plain-text tables for `-o table` output.

#include <ostream>
#include <string>
#include <vector>

namespace paddock::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Columns are separated by three spaces, like `docker ps`.
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace paddock::cli
