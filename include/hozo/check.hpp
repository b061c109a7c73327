#pragma once
// `hozo check`: an online preflight of a job that transfers no data. Each check is one row
// (ok / warn / fail / skipped, a detail, and for warn/fail a fix). Checks that depend on an
// earlier failure are skipped with the reason. Nothing here writes to a dataset or sends data:
// the remote side only sees `zfs version`, `zfs list`, `zfs get`, `zfs allow`, `zpool list` and
// `zpool import` (without a pool name: it only lists); locally `zfs list`, `zfs get` and
// `zfs send -nvP` (a dry run). With --wake the box is woken and, when check woke it and no job
// uses it, powered off again (the same HostLease protocol as the job pipeline).
//
// The pure pieces (WOL address logic, `zfs allow` parsing, send-size parsing) are separate
// functions so they can be unit-tested with fake inputs.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "hozo/config.hpp"
#include "hozo/job.hpp"
#include "hozo/ssh.hpp"
#include "hozo/util/result.hpp"

namespace hozo {

/// The result of one check.
enum class CheckStatus { ok, warn, fail, skipped };

/// "ok", "warn", "fail", "skipped".
std::string_view to_string(CheckStatus status) noexcept;

/// "✓", "!", "✗", "-".
std::string_view check_symbol(CheckStatus status) noexcept;

/// One row of the check table.
struct CheckRow {
  std::string name;    ///< "host key", "source tank/data", ...
  CheckStatus status = CheckStatus::ok;
  std::string detail;  ///< what was found (or why the check was skipped)
  std::string fix;     ///< for warn/fail: what to do about it
};

/// All rows of one job.
struct CheckReport {
  std::string job;
  std::vector<CheckRow> rows;
  bool woke = false;         ///< check sent a wake and the box came up
  bool powered_off = false;  ///< check powered the box off again
  bool interrupted = false;  ///< SIGINT/SIGTERM stopped the checks
  /// True when no row failed (warnings and skipped rows are fine).
  [[nodiscard]] bool ok() const noexcept;
};

/// {"job", "ok", "woke", "powered_off", "rows": [{"name", "status", "detail", "fix"}]}.
nlohmann::json to_json(const CheckReport& report);

/// The table: one line per row ("  ✓ name  detail"), and "fix: ..." under warn/fail rows.
std::string format_report(const CheckReport& report);

// ------------------------------------------------------------------ WOL settings (pure)

/// One IPv4 address of a local interface (host byte order).
struct Ipv4Address {
  std::uint32_t address = 0;
  std::uint32_t netmask = 0;
  std::uint32_t broadcast = 0;  ///< as the kernel reports it; 0 = none (computed from the mask)
};

/// A local network interface as getifaddrs reports it.
struct LocalInterface {
  std::string name;
  bool up = false;
  bool loopback = false;
  std::vector<Ipv4Address> ipv4;
};

/// The machine's interfaces (getifaddrs); empty when they cannot be listed.
std::vector<LocalInterface> list_local_interfaces();

/// Parses a dotted-quad IPv4 literal; nullopt for anything else.
std::optional<std::uint32_t> parse_ipv4(std::string_view text) noexcept;

/// "10.0.0.1".
std::string format_ipv4(std::uint32_t address);

/// Checks wol_broadcast / wol_interface against the local interfaces (for a job without a relay):
/// 255.255.255.255 or the broadcast address of a local IPv4 subnet is ok; a unicast address on a
/// local subnet or a host name is a warning; anything else (routers drop directed broadcasts to
/// remote subnets) fails. A wol_interface that does not exist fails; one that is down warns.
CheckRow check_wol_settings(const Job& job, const std::vector<LocalInterface>& interfaces);

// ------------------------------------------------------------------ zfs allow (pure)

/// The permissions syncoid's receive needs on the target when logging in as a non-root user
/// without privilege elevation.
const std::vector<std::string>& required_receive_permissions();
/// Permissions syncoid uses when they are there (rollback of a diverged target, pruning its sync snapshots).
const std::vector<std::string>& recommended_receive_permissions();

/// Who the permissions are for.
struct AllowSubject {
  std::string user;
  std::vector<std::string> groups;  ///< the user's groups (from `id -Gn`), may be empty
};

/// The permissions `subject` effectively has on `dataset` according to `zfs allow DATASET` output:
/// "Local" and "Local+Descendent" entries on the dataset itself, "Descendent" and
/// "Local+Descendent" entries on its ancestors, for `user NAME`, `group NAME` (of the subject's
/// groups) and `everyone`; permission sets (@name) are expanded. Create-time permissions are not
/// counted. Error for output it cannot parse.
Result<std::set<std::string>> parse_zfs_allow(std::string_view output, std::string_view dataset,
                                              const AllowSubject& subject);

/// The number `zfs get -H -p -o value PROPERTY DATASET` printed (its first non-empty line); nullopt
/// for "-" (not applicable) or anything that is not a plain byte count.
std::optional<std::uint64_t> parse_property_u64(std::string_view output);

// ------------------------------------------------------------------ send size (pure)

/// The total from `zfs send -nvP` output: the "size\tN" line (stdout or stderr); nullopt when absent.
std::optional<std::uint64_t> parse_send_size(std::string_view output);


// ------------------------------------------------------------------ running the checks

/// What the checks talk to; the defaults are the real systems.
struct CheckEnv {
  JobSystems& systems;  ///< probe, wake, wait_up, connect, local, power_off, clock
  std::function<Result<HostKeyInfo>(const SshOptions&)> fetch_host_key;   ///< empty = hozo::fetch_host_key
  std::function<std::vector<LocalInterface>()> interfaces;                ///< empty = list_local_interfaces
  std::function<std::optional<std::filesystem::path>(std::string_view)> find_program;  ///< empty = find_in_path
  std::function<ProbeResult(const std::string& host, int port)> probe_relay;         ///< empty = probe_ssh
  /// The state directory for the host lease (hosts/<host>.lock, .woken); empty = no lease (tests).
  std::filesystem::path state_dir;
  /// The config file, for the first row.
  std::filesystem::path config_path;
  /// The state file, to tell a late-woken box from a stale marker (settle_woken_marker);
  /// nullptr = every marker found on a running box counts as stale.
  const StateStore* state = nullptr;
};

/// How to check.
struct CheckOptions {
  bool wake = false;                          ///< wake the box when it is off (and power it off again)
  const std::atomic<bool>* cancel = nullptr;  ///< SIGINT/SIGTERM
};

/// Runs every check of one job, in order, and returns the rows.
CheckReport run_checks(const Job& job, CheckEnv& env, const CheckOptions& options);

/// Checks several jobs, in order, until `options.cancel` is set. With `options.wake`, jobs that
/// share a box are checked under one extra host lease, so the box is woken once (by the first of
/// them that finds it off) and powered off once, after the last of them — only if check woke it
/// and no backup job uses it — with that row in the last job's report.
std::vector<CheckReport> run_checks_for_jobs(const std::vector<const Job*>& jobs, CheckEnv& env,
                                             const CheckOptions& options);

}  // namespace hozo
