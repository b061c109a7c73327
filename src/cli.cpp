#include "hozo/cli.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "hozo/log.hpp"
#include "hozo/util/exit_code.hpp"
#include "hozo/version.hpp"

namespace hozo {

int run_cli(int argc, char** argv) {
  CLI::App app{"hozo - off-site ZFS backups to a backup box that sleeps"};
  app.set_version_flag("--version", std::string("hozo ") + kVersion);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : to_int(ExitCode::usage);
  }
  setup_logging(0);
  return 0;
}

}  // namespace hozo
