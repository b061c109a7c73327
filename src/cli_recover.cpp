// `hozo recover NAME`: clean up after a hard-killed run (logic in recover.cpp). systemd runs it as
// ExecStopPost= of hozo@.service, so it also runs after SIGKILL or the OOM killer.
#include <memory>

#include <fmt/format.h>

#include "cli_internal.hpp"
#include "hozo/job.hpp"
#include "hozo/recover.hpp"

namespace hozo::cli {

namespace {

int cmd_recover(const Globals& g, const std::string& name) {
  const auto config = load(g);
  const auto& job = find_job(config, name);
  auto store = open_state(g, &config);
  auto systems = make_real_systems(&g_cancel);
  const auto report = unwrap(recover_job(job, store, *systems, &g_cancel));
  if (g.json) {
    print_json(nlohmann::json{{"job", job.name}, {"cleaned", report.cleaned}, {"shutdown", report.shutdown},
                              {"exit_code", report.exit_code}});
  } else if (!g.quiet) {
    for (const auto& line : report.cleaned) fmt::print("{}: {}\n", job.name, line);
    fmt::print("{}: box {}: {}\n", job.name, to_string(report.shutdown.outcome), report.shutdown.message);
  }
  return report.exit_code;
}

}  // namespace

void add_recover_command(CLI::App& app, Globals& g, Action& action) {
  auto name = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("recover",
                                 "after a hard kill: kill the dead run's leftovers, mark it interrupted, power off "
                                 "the box it woke (ExecStopPost= of hozo@.service)");
  cmd->add_option("NAME", *name, "job name")->required();
  cmd->callback([&g, &action, name] { action = [&g, name] { return cmd_recover(g, *name); }; });
}

}  // namespace hozo::cli
