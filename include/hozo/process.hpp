#pragma once
// Running a local argv vector: its own process group, stdin from /dev/null, stdout/stderr
// streamed line by line, and on timeout or cancel the whole group is terminated
// (SIGTERM, grace period, SIGKILL) and reaped. Never goes through a shell.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/command.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// Whether a stream's bytes are kept in ProcessResult::out / err.
enum class Capture { yes, no };

/// Called with each output line (without the line break). '\n', '\r' and "\r\n" end a line,
/// so progress meters that redraw with '\r' arrive as lines; a final unterminated line is
/// delivered at EOF.
using LineCallback = std::function<void(std::string_view line)>;

/// What to run and how.
struct ProcessOptions {
  /// The command; argv[0] is looked up in PATH like execvp (unless it contains '/').
  std::vector<std::string> argv;
  /// Environment changes on top of the current environment: a value sets, nullopt unsets.
  /// A PATH set here is also used to look up argv[0]; without one argv[0] is looked up on
  /// tool_search_path() ($PATH, then the sbin directories).
  std::map<std::string, std::optional<std::string>> env;
  /// Working directory of the child; nullopt = inherit.
  std::optional<std::filesystem::path> working_dir;
  /// Terminate the process group after this long; nullopt = no limit.
  std::optional<Millis> timeout;
  LineCallback on_stdout_line;
  LineCallback on_stderr_line;
  Capture capture_stdout = Capture::yes;
  Capture capture_stderr = Capture::yes;
  /// Bytes kept per captured stream; the rest is dropped (and `*_truncated` set).
  std::size_t capture_limit = std::size_t{64} << 20;
  /// When this becomes true the process group is terminated (checked every tick).
  const std::atomic<bool>* cancel = nullptr;
  /// Between SIGTERM and SIGKILL to the group.
  Millis kill_grace{5000};
  /// How long to keep reading after the child exited when something it left behind still
  /// holds the pipes open; then the rest of its process group is killed.
  Millis drain_after_exit{2000};
  /// Poll tick: the latency for noticing timeout and cancel.
  Millis tick{50};
};

/// How the process ended and what it printed.
struct ProcessResult {
  int exit_code = -1;    ///< exit status, or -1 when killed by a signal
  int term_signal = 0;   ///< the signal that killed it, 0 if none
  bool timed_out = false;
  bool cancelled = false;
  std::string out;
  std::string err;
  bool out_truncated = false;
  bool err_truncated = false;
  std::chrono::steady_clock::duration elapsed{};
  int pgid = 0;  ///< the process group the command ran in (gone by the time this is returned)
};

/// Watches the processes that one thread starts through run_process (the job pipeline records
/// their process groups in the state file, so that `hozo recover` or the next run can find what
/// a killed run left behind, even descendants that left the group, such as a daemonized ssh).
struct SpawnWatch {
  /// Exported to every child (and so to its descendants) as HOZO_RUN_ID=<tag>; empty = none.
  std::string tag;
  /// Called in the spawning thread with the new process group id, right after the child started.
  std::function<void(int pgid)> on_spawn;
};

/// Installs `watch` for run_process calls made by this thread until destroyed (they nest: the
/// previous watch comes back). `watch` must outlive the guard.
class ScopedSpawnWatch {
 public:
  explicit ScopedSpawnWatch(const SpawnWatch& watch) noexcept;
  ~ScopedSpawnWatch();
  ScopedSpawnWatch(const ScopedSpawnWatch&) = delete;
  ScopedSpawnWatch& operator=(const ScopedSpawnWatch&) = delete;

 private:
  const SpawnWatch* previous_;
};

/// The environment variable that tags children with their run (SpawnWatch::tag).
inline constexpr const char* kRunTagVariable = "HOZO_RUN_ID";

/// Runs the process to completion. The child is forked from the calling thread and gets
/// PR_SET_PDEATHSIG(SIGKILL), so it dies with hozo (the group it leaves is found later by tag). Errors (the command never ran): empty argv; command not
/// found ("syncoid: command not found", ExitCode::unavailable); not executable; working
/// directory missing; pipe/spawn failures. Timeouts, cancels, signals and non-zero exits are
/// values in ProcessResult.
Result<ProcessResult> run_process(const ProcessOptions& options);

/// execvp-style lookup: a name containing '/' is returned as is (if it exists); otherwise
/// the first executable regular file in `path_env` (default: $PATH, or "/bin:/usr/bin").
std::optional<std::filesystem::path> find_in_path(std::string_view name,
                                                  std::optional<std::string_view> path_env = std::nullopt);

/// The directories system tools live in on Debian (syncoid, zfs, zpool are in /usr/sbin), which
/// cron's PATH (/usr/bin:/bin) and `env -i` leave out.
inline constexpr std::string_view kSbinDirs = "/usr/local/sbin:/usr/sbin:/sbin";

/// `path_env` (default: $PATH, or "/usr/bin:/bin" when unset) with each kSbinDirs directory it
/// lacks appended: the search path for the tools hozo runs locally, and the PATH syncoid gets
/// (it runs `zfs` by name).
std::string tool_search_path(std::optional<std::string_view> path_env = std::nullopt);

/// find_in_path over tool_search_path(): $PATH first, then the sbin directories.
std::optional<std::filesystem::path> find_program(std::string_view name);

/// A one-line description of how a process ended: "exited with status 3",
/// "killed by signal 9 (Killed)", "timed out after 10s", "cancelled".
std::string describe_termination(const ProcessResult& result, std::optional<Millis> timeout = std::nullopt);

/// CommandRunner for the local machine on top of run_process. Timeouts, cancels (code
/// interrupted) and deaths by signal are Errors; a non-zero exit status is a value.
class LocalCommandRunner final : public CommandRunner {
 public:
  /// `cancel` (optional) terminates a running command when it becomes true.
  explicit LocalCommandRunner(const std::atomic<bool>* cancel = nullptr, Millis kill_grace = Millis(5000))
      : cancel_(cancel), kill_grace_(kill_grace) {}

  Result<CommandOutput> run(const std::vector<std::string>& argv, std::chrono::seconds timeout) override;
  [[nodiscard]] std::string where() const override { return "local"; }

 private:
  const std::atomic<bool>* cancel_;
  Millis kill_grace_;
};

}  // namespace hozo
