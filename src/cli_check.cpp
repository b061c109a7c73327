// `hozo check NAME... | --all [--wake]`: the online preflight (see hozo/check.hpp).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_internal.hpp"
#include "hozo/check.hpp"
#include "hozo/job.hpp"

namespace hozo::cli {

namespace {

int cmd_check(const Globals& g, const std::vector<std::string>& names, bool all, bool wake) {
  const auto config = load(g);
  const std::vector<const Job*> jobs = select_jobs(config, names, all);
  auto store = open_state(g, &config);
  auto systems = make_real_systems(&g_cancel);
  CheckEnv env{*systems, {}, {}, {}, {}, store.dir(), config.path, &store};
  CheckOptions options;
  options.wake = wake;
  options.cancel = &g_cancel;
  bool all_ok = true;
  bool interrupted = false;
  auto reports = nlohmann::json::array();
  const auto results = run_checks_for_jobs(jobs, env, options);
  interrupted = results.size() < jobs.size();
  for (const auto& report : results) {
    all_ok = all_ok && report.ok();
    interrupted = interrupted || report.interrupted;
    if (g.json) {
      reports.push_back(to_json(report));
    } else {
      fmt::print("{}", format_report(report));
    }
  }
  if (g.json) print_json({{"ok", all_ok && !interrupted}, {"jobs", reports}});
  if (interrupted) return to_int(ExitCode::interrupted);
  return all_ok ? 0 : to_int(ExitCode::failure);
}

}  // namespace

void add_check_command(CLI::App& app, Globals& g, Action& action) {
  struct Options {
    std::vector<std::string> names;
    bool all = false;
    bool wake = false;
  };
  auto opts = std::make_shared<Options>();
  auto* check = app.add_subcommand("check", "online preflight of jobs, transfers no data: a table of checks with fixes "
                                            "(exit 0 when none failed, 1 otherwise)");
  check->add_option("NAME", opts->names, "job names");
  check->add_flag("--all", opts->all, "check every job in the config");
  check->add_flag("--wake", opts->wake, "wake the box when it is off (and power it off again afterwards)");
  check->callback([&g, &action, opts] { action = [&g, opts] { return cmd_check(g, opts->names, opts->all, opts->wake); }; });
}

}  // namespace hozo::cli
