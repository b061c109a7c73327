#include "hozo/backupd.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "hozo/util/exit_code.hpp"
#include "hozo/version.hpp"

namespace hozo {

int run_backupd(int argc, char** argv) {
  CLI::App app{"backupd - Hōzō agent for the remote backup box"};
  app.set_version_flag("--version", std::string("backupd ") + kVersion);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : to_int(ExitCode::usage);
  }
  fmt::print(stderr, "backupd {}: the HTTP agent is not implemented yet\n", kVersion);
  return to_int(ExitCode::unavailable);
}

}  // namespace hozo
