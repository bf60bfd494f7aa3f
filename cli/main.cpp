#include "cli/app.hpp"

int main(int argc, char** argv) { return paddock::cli::run_main(argc, argv); }
