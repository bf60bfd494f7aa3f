#include "server/config.hpp"
#include "server/server.hpp"

#include <variant>

int main(int argc, char** argv) {
  auto parsed = paddock::server::parse_config(argc, argv);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  paddock::server::Server server(std::move(std::get<paddock::server::Config>(parsed)));
  return server.run();
}
