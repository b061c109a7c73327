#pragma once
// The `hozo` command line: parses argv, dispatches to subcommands, maps errors to exit codes.

namespace hozo {

/// Runs the hozo CLI; returns the process exit code (see ExitCode).
int run_cli(int argc, char** argv);

}  // namespace hozo
