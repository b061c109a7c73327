#pragma once
// backupd: the small HTTP agent on the remote backup box.

namespace hozo {

/// Runs backupd with its command line; returns the process exit code.
int run_backupd(int argc, char** argv);

}  // namespace hozo
