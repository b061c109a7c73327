#pragma once
// Which syncoid is installed, and what that release can do. Users run Debian 12's syncoid 2.1.0,
// Debian 13's 2.2.0 and unstable's 2.3.0; the differences hozo cares about (read from the
// sources of each release, tests/syncoid-versions.sh fetches them):
//   2.2.0  adds --sshconfig, --use-hold, --delete-target-snapshots, --preserve-properties and
//          --insecure-direct-connection; removes --no-clone-rollback; a missing source dataset
//          is exit 2 (2.1.0 printed "Skipping dataset (dataset no longer exists)" and exited 0);
//          the ssh control socket gets a random suffix.
//   2.3.0  deprecates --exclude (a warning) for --exclude-datasets; adds --include-snaps and
//          --exclude-snaps, compress zstdmt-fast/zstdmt-slow; the --sendoptions allowlist drops D
//          and gains V, X (with a value), b, s; log lines are "INFO:", "WARNING:", "CRITICAL ERROR:";
//          the control socket name carries the pid.

#include <chrono>
#include <compare>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "hozo/util/result.hpp"

namespace hozo {

/// A syncoid release, as `syncoid --version` prints it ("... syncoid version 2.2.0").
struct SyncoidVersion {
  int major = 2;
  int minor = 1;
  int patch = 0;
  auto operator<=>(const SyncoidVersion&) const = default;
  /// "2.2.0"
  [[nodiscard]] std::string str() const;
};

/// Debian 12's syncoid: what hozo assumes when the version cannot be told.
inline constexpr SyncoidVersion kSyncoid210{2, 1, 0};
inline constexpr SyncoidVersion kSyncoid220{2, 2, 0};
inline constexpr SyncoidVersion kSyncoid230{2, 3, 0};

/// Parses the output of `syncoid --version` ("/usr/sbin/syncoid version 2.1.0\n(Getopt::Long::...)").
/// nullopt when no "version X.Y[.Z]" is found.
std::optional<SyncoidVersion> parse_syncoid_version(std::string_view version_output);

/// The version a syncoid perl script sets near its top (`$::VERSION = '2.1.0';`), from the first
/// bytes of the file; nullopt for anything else (a wrapper script, a binary, no such line).
std::optional<SyncoidVersion> parse_syncoid_source_version(std::string_view head);

/// The version of the syncoid at PROGRAM: read off the script itself when it is syncoid's perl
/// source, else by running `PROGRAM --version` and parsing its output. Cached per program path for
/// the life of the process (one run asks once). An Error when it cannot run or prints no version.
Result<SyncoidVersion> detect_syncoid_version(const std::filesystem::path& program,
                                              std::chrono::seconds timeout = std::chrono::seconds(15));

/// syncoid 2.1.x names its ssh control socket /tmp/syncoid-USER@HOST-<unix seconds>, so two
/// starts to one host in the same second share (and close) one socket: hozo spaces the starts
/// (space_syncoid_start). 2.2.0 added a random suffix, 2.3.0 the pid.
bool syncoid_needs_start_spacing(const SyncoidVersion& v);

/// 2.3.0 and later: --exclude-datasets (--exclude is deprecated and warns on stderr).
bool syncoid_has_exclude_datasets(const SyncoidVersion& v);

/// Before 2.2.0 a missing source dataset is only a warning ("Skipping dataset (dataset no longer
/// exists)") and syncoid exits 0.
bool syncoid_skips_missing_source(const SyncoidVersion& v);

/// The zfs send option letters syncoid passes on from --sendoptions (others it silently drops).
std::string_view syncoid_send_option_letters(const SyncoidVersion& v);

/// Option letters of --sendoptions/--recvoptions that take the next word as their value.
std::string_view syncoid_valued_option_letters(const SyncoidVersion& v);

/// Whether `--compress=METHOD` exists in this release (zstdmt-* came with 2.3.0).
bool syncoid_has_compress(const SyncoidVersion& v, std::string_view method);

/// A syncoid exit re-read for the release that produced it: 2.1.x exits 0 after skipping the
/// source dataset `source` when it does not exist (the line "WARN Skipping dataset (dataset no
/// longer exists): SOURCE..." on stdout); that is a critical failure, exit 2, as 2.2.0 and later
/// report it. (A child of a recursive source vanishing mid-run stays a skip in every release.)
/// Returns the exit code to classify.
int syncoid_effective_exit(const SyncoidVersion& v, int exit_code, std::string_view stdout_tail,
                           std::string_view source);

}  // namespace hozo
