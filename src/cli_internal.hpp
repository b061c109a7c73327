#pragma once
// Shared pieces of the hozo command line (private to src/): the global options, the one way a
// command handler leaves with an exit code, and the helpers every command uses. Commands that
// live in their own file (cli_*.cpp) register themselves through an add_*_commands function
// declared here and called from cli.cpp's command tree.

#include <atomic>
#include <chrono>
#include <optional>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "hozo/config.hpp"
#include "hozo/job.hpp"
#include "hozo/state.hpp"
#include "hozo/status_json.hpp"
#include "hozo/util/result.hpp"

namespace hozo::cli {

/// Options shared by all subcommands.
struct Globals {
  std::string config_path;
  std::string state_path;
  int verbose = 0;
  bool quiet = false;
  bool json = false;
};

/// The action a parsed subcommand will run; returns the process exit code.
using Action = std::function<int()>;

/// Set by SIGINT/SIGTERM (install_signal_handlers); long operations poll it.
extern std::atomic<bool> g_cancel;

/// SIGINT/SIGTERM set g_cancel (no SA_RESTART); SIGPIPE is ignored.
void install_signal_handlers();

/// Thrown inside command handlers to leave with an exit code (caught once in run()).
struct ExitWith {
  Error error;
};

/// Leaves the command with this error (its code becomes the exit code).
[[noreturn]] void leave(Error e);

/// The value, or leave() with the error.
template <typename T>
T unwrap(Result<T> r) {
  if (!r) leave(std::move(r).error());
  return std::move(*r);
}

/// leave() with the error, if any.
void unwrap(Result<void> r);

/// -c/--config, else $HOZO_CONFIG, else the default path.
std::filesystem::path config_path(const Globals& g);

/// What a command does with the config.
enum class ConfigUse {
  act,     ///< runs, wakes, notifies, writes timers, shows secrets' origins: always parsed
  display  ///< only shows it (jobs list, status, logs, history): may come from the display cache
           ///< beside an existing state file (config_cache.hpp), which holds no secret
};

/// Loads and validates the config: errors outside job entries leave with 78; a job with errors
/// is left out of config.jobs (listed in config.broken_jobs, with a warning logged per job), so
/// the other jobs keep working. Notices are logged at debug level (config validate prints them).
Config load(const Globals& g, ConfigUse use = ConfigUse::act);

/// Leaves with 78 and every issue when some job of the config is broken.
void require_no_broken_jobs(const Config& config);

/// --state, else the default state path.
std::filesystem::path state_path(const Globals& g);

/// Opens the state store (--state or the default path).
StateStore open_state(const Globals& g, const Config* config);

/// The job with this name, or leave() with exit 2 and a did-you-mean hint (78 and the job's
/// issues when the entry exists but is broken).
const Job& find_job(const Config& config, const std::string& name);

/// `hozo config validate|example` (src/cli_config.cpp).
void add_config_command(CLI::App& app, Globals& g, Action& action);

/// `hozo check`: online preflight of jobs, transfers no data (src/cli_check.cpp).
void add_check_command(CLI::App& app, Globals& g, Action& action);

/// NAME... or --all (exactly one of them), resolved to jobs; leaves with exit 2 otherwise.
std::vector<const Job*> select_jobs(const Config& config, const std::vector<std::string>& names, bool all);

/// `hozo restore`: pull a backup back from the box (src/cli_restore.cpp).
void add_restore_command(CLI::App& app, Globals& g, Action& action);

/// `hozo init`: the first set-up of one job (src/cli_init.cpp).
void add_init_command(CLI::App& app, Globals& g, Action& action);
/// `hozo recover`: clean up after a hard-killed run (src/cli_recover.cpp).
void add_recover_command(CLI::App& app, Globals& g, Action& action);

/// `hozo jobs reseed`: a full send into new target datasets for broken chains (src/cli_reseed.cpp).
void add_reseed_command(CLI::App& jobs, Globals& g, Action& action);

/// The stage lines `jobs run` prints on a terminal.
std::unique_ptr<RunReporter> make_tty_reporter();

/// Pretty-printed JSON on stdout.
void print_json(const nlohmann::json& j);

/// `hozo schedule`: timer drop-ins or cron lines from the jobs' schedules (src/cli_schedule.cpp).
void add_schedule_command(CLI::App& app, Globals& g, Action& action);

/// `hozo status --check [NAME...]`: one Nagios-style line per job; exit 0 ok, 1 a last run failed,
/// 2 overdue, 3 the state cannot be read.
int cmd_status_check(const Globals& g, const std::vector<std::string>& names);
/// `hozo logs NAME [--run ID] [-f]` (src/cli_status.cpp).
void add_logs_command(CLI::App& app, Globals& g, Action& action);
/// `hozo serve`: the web dashboard and API (src/cli_serve.cpp, src/serve/).
void add_serve_command(CLI::App& app, Globals& g, Action& action);

/// Runs the CLI (hozo::run_cli forwards here).
int run(int argc, char** argv);

}  // namespace hozo::cli
