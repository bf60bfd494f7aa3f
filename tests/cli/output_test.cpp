#include "cli/output.hpp"
#include "cli/table.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace paddock::cli {
namespace {

TEST(Output, Bytes) {
  EXPECT_EQ(format_bytes(0.0), "0B");
  EXPECT_EQ(format_bytes(1023.0), "1023B");
  EXPECT_EQ(format_bytes(1536.0), "1.50KiB");
  EXPECT_EQ(format_bytes(52428800.0), "50.0MiB");
  EXPECT_EQ(format_bytes(8589934592.0), "8.00GiB");
  EXPECT_EQ(format_bytes(std::nullopt), "-");
  EXPECT_EQ(format_bytes_si(1500.0), "1.50kB");
  EXPECT_EQ(format_bytes_si(648.0), "648B");
  EXPECT_EQ(format_bytes_si(123456789.0), "123MB");
}

TEST(Output, Percent) {
  EXPECT_EQ(format_percent(12.345), "12.35%");
  EXPECT_EQ(format_percent(0.0), "0.00%");
  EXPECT_EQ(format_percent(std::nullopt), "-");
}

TEST(Output, CellsAreSafeForATerminal) {
  const nlohmann::json r = {{"name", "evil\x1b[2Jname"}, {"n", 3}, {"none", nullptr}, {"empty", ""}};
  EXPECT_EQ(cell(r, "name"), "evil?[2Jname");
  EXPECT_EQ(cell(r, "n"), "3");
  EXPECT_EQ(cell(r, "none"), "-");
  EXPECT_EQ(cell(r, "empty"), "-");
  EXPECT_EQ(cell(r, "absent"), "-");
}

TEST(Output, TableAlignsColumns) {
  Table t({"ID", "NAME"});
  t.add({"1h1", "web-01"});
  t.add({"1h22", "db"});
  std::ostringstream out;
  t.print(out);
  EXPECT_EQ(out.str(),
            "ID     NAME\n"
            "1h1    web-01\n"
            "1h22   db\n");
}

}  // namespace
}  // namespace paddock::cli
