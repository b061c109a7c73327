// `hozo jobs reseed NAME [--dataset SRC] [--replace [--force]] [--yes] [--dry-run]`: repair a broken
// incremental chain on request (logic in reseed.cpp and the job pipeline).
#include <unistd.h>

#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include "cli_internal.hpp"
#include "hozo/box.hpp"
#include "hozo/job.hpp"
#include "hozo/reseed.hpp"
#include "hozo/syncoid.hpp"
#include "hozo/util/strings.hpp"

namespace hozo::cli {

namespace {

constexpr std::chrono::seconds kLocalTimeout{60};

struct ReseedArgs {
  std::string name;
  std::string dataset;
  bool replace = false;
  bool force = false;
  bool yes = false;
  bool dry_run = false;
};

/// Without --yes: ask on the terminal; without one, refuse (exit 64) and say what would be done.
void confirm(const Job& job, const ReseedPlan& plan, const std::string& text) {
  if (::isatty(STDIN_FILENO) != 1) {
    fmt::print(stderr, "{}", text);
    leave(make_error(ExitCode::unconfirmed,
                     "hozo jobs reseed sends {} dataset pair(s) of job {} in full to {} and needs confirmation, but "
                     "there is no terminal to ask on; add --yes to do what is shown above. Nothing was done",
                     plan.pairs.size(), job.name, job.target_host));
  }
  fmt::print("{}", text);
  fmt::print("{}Re-seed now? [y/N] ",
             plan.replace == ReplaceTarget::destroy ? "The old target copies will be DESTROYED after the swap. " : "");
  std::fflush(stdout);
  std::string answer;
  const bool got = static_cast<bool>(std::getline(std::cin, answer));
  const std::string a = to_lower(trim(answer));
  if (!got || (a != "y" && a != "yes")) leave(make_error(ExitCode::unconfirmed, "not confirmed; nothing was done"));
}

int cmd_jobs_reseed(const Globals& g, const ReseedArgs& args) {
  if (args.force && !args.replace) {
    leave(make_error(ExitCode::usage, "--force destroys the old target after --replace; give --replace too"));
  }
  const auto config = load(g);
  const auto& job = find_job(config, args.name);
  ReseedRequest request;
  request.dataset = args.dataset;
  request.replace = args.force ? ReplaceTarget::destroy : (args.replace ? ReplaceTarget::aside : ReplaceTarget::keep);
  auto plan = unwrap(plan_reseed(job, request, std::chrono::system_clock::now()));

  SyncoidVersion version = kSyncoid210;
  if (auto syncoid = find_syncoid(job)) {
    version = syncoid->version;
  } else if (!args.dry_run) {
    leave(syncoid.error());
  } else {
    spdlog::warn("[{}] {}", job.name, syncoid.error().message);
  }
  auto store = open_state(g, &config);
  auto systems = make_real_systems(&g_cancel);
  std::optional<JobState> js;
  if (auto j = store.job(job.name)) js = std::move(*j);
  note_offline_chain(systems->local(), job, js ? &*js : nullptr, plan, kLocalTimeout);
  std::vector<std::string> commands;
  const auto trust = syncoid_trust(job);
  for (const auto& p : plan.pairs) {
    auto argv = build_syncoid_argv(job, DatasetPair{p.pair.source, p.new_target, p.pair.recursive}, trust, version);
    commands.push_back(argv ? describe_command(*argv) : "(" + argv.error().message + ")");
  }
  const std::string text = describe_reseed(job, plan, commands);
  if (args.dry_run) {
    if (g.json) {
      auto lines = nlohmann::json::array();
      for (const auto line : split_lines(text)) {
        if (!line.empty()) lines.push_back(std::string(line));
      }
      print_json({{"job", job.name}, {"dry_run", true}, {"plan", lines}});
    } else {
      fmt::print("{}", text);
    }
    return 0;
  }
  if (!args.yes) confirm(job, plan, text);

  const bool on_tty = ::isatty(STDOUT_FILENO) == 1 && !g.json;
  auto tty = make_tty_reporter();
  if (on_tty && g.verbose == 0) {
    for (auto& sink : spdlog::default_logger()->sinks()) sink->set_level(spdlog::level::warn);
  }
  RunOptions options;
  options.cancel = &g_cancel;
  options.reporter = on_tty ? tty.get() : nullptr;
  options.log_keep = config.log_keep;
  options.reseed = &plan;
  if (on_tty) fmt::print("{} (re-seed):\n", job.name);
  const auto record = unwrap(run_job(job, store, *systems, options));
  if (g.json) {
    print_json(record);
  } else if (!on_tty && !g.quiet) {
    fmt::print("{}\n", summarize(record));
  }
  return record.exit_code;
}

}  // namespace

void add_reseed_command(CLI::App& jobs, Globals& g, Action& action) {
  auto args = std::make_shared<ReseedArgs>();
  auto* cmd = jobs.add_subcommand(
      "reseed", "repair a broken chain: full send into a new target dataset, verified; --replace swaps it in");
  cmd->add_option("NAME", args->name, "job name")->required();
  cmd->add_option("--dataset", args->dataset,
                  "only this source dataset of the job (re-seeded even when its chain is intact); default: every "
                  "dataset whose target shares no snapshot with the source");
  cmd->add_flag("--replace", args->replace,
                "once verified, rename the old target to <target>.old-<UTC time> and the new one into its place");
  cmd->add_flag("--force", args->force, "with --replace: destroy the old target afterwards (zfs destroy -r)");
  cmd->add_flag("-y,--yes", args->yes, "do not ask for confirmation (needed without a terminal)");
  cmd->add_flag("-n,--dry-run", args->dry_run, "print the plan and the exact syncoid commands; touch nothing");
  cmd->callback([&g, &action, args] { action = [&g, args] { return cmd_jobs_reseed(g, *args); }; });
}

}  // namespace hozo::cli
