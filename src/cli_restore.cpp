// `hozo restore NAME [--dataset SRC] [--snapshot SNAP] [--to DATASET] [--in-place --force-delete
// [--confirm NAME]] [--dry-run]`: the break-glass command (logic in restore.cpp).
#include <unistd.h>

#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli_internal.hpp"
#include "hozo/box.hpp"
#include "hozo/job.hpp"
#include "hozo/restore.hpp"
#include "hozo/util/strings.hpp"

namespace hozo::cli {

namespace {

struct RestoreArgs {
  std::string name;
  RestoreRequest request;
  bool dry_run = false;
};

/// --in-place without --confirm: ask for the job name on the terminal; refuse without one.
void confirm_in_place(const Job& job, const RestorePlan& plan, const RestoreRequest& request) {
  if (!request.confirm.empty()) {
    leave(make_error(ExitCode::usage, "--confirm \"{}\" does not match the job name \"{}\"; nothing was done",
                     printable(request.confirm), job.name));
  }
  if (::isatty(STDIN_FILENO) != 1) {
    leave(make_error(ExitCode::usage,
                     "--in-place overwrites {} and needs confirmation, but there is no terminal to ask on; "
                     "add --confirm {} (the job name). Nothing was done",
                     plan.target, job.name));
  }
  fmt::print(stderr,
             "hozo restore --in-place: {} will be OVERWRITTEN with {}:{}{}; local changes and snapshots newer "
             "than that are destroyed.\nType the job name ({}) to continue: ",
             plan.target, job.target_host, plan.pair.target, plan.snapshot.empty() ? "" : "@" + plan.snapshot,
             job.name);
  std::fflush(stderr);
  std::string answer;
  if (!std::getline(std::cin, answer) || std::string(trim(answer)) != job.name) {
    leave(make_error(ExitCode::usage, "the answer does not match the job name; nothing was done"));
  }
}

int cmd_restore(const Globals& g, const RestoreArgs& args) {
  const auto config = load(g);
  const auto& job = find_job(config, args.name);
  RestoreRequest request = args.request;
  if (auto syncoid = find_syncoid(job)) {
    request.syncoid_version = syncoid->version;
    if (!syncoid->version_known) spdlog::warn("[{}] {}; assuming syncoid {}", job.name, syncoid->problem, syncoid->version.str());
  } else if (!args.dry_run) {
    leave(syncoid.error());
  } else {
    spdlog::warn("[{}] {}", job.name, syncoid.error().message);
  }
  auto plan = unwrap(plan_restore(job, request, std::chrono::system_clock::now()));
  if (args.dry_run) {
    fmt::print("{}", describe_restore(job, plan));
    return 0;
  }
  if (plan.in_place && !plan.confirmed) {
    confirm_in_place(job, plan, args.request);
    plan.confirmed = true;
  }
  auto store = open_state(g, &config);
  auto systems = make_real_systems(&g_cancel);
  const auto record = unwrap(run_restore(job, plan, store, *systems, &g_cancel));
  if (g.json) {
    print_json(record);
  } else if (!g.quiet) {
    fmt::print("{}\n", summarize(record));
  }
  return record.exit_code;
}

}  // namespace

void add_restore_command(CLI::App& app, Globals& g, Action& action) {
  auto args = std::make_shared<RestoreArgs>();
  auto* cmd = app.add_subcommand(
      "restore", "pull a backup back from the box into a new local dataset (or, with --in-place, over the source)");
  cmd->add_option("NAME", args->name, "job name")->required();
  cmd->add_option("--dataset", args->request.dataset,
                  "which source dataset of the job (or a child of a recursive one); default: the job's only one");
  cmd->add_option("--snapshot", args->request.snapshot, "restore this snapshot (the part after '@'); default: the newest");
  cmd->add_option("--to", args->request.to, "local dataset to create (default: <source>-restore-<UTC time>)");
  cmd->add_flag("--in-place", args->request.in_place, "overwrite the live source dataset (needs --force-delete and confirmation)");
  cmd->add_flag("--force-delete", args->request.force_delete,
                "with --in-place: let syncoid destroy and replace local data (syncoid --force-delete)");
  cmd->add_option("--confirm", args->request.confirm, "with --in-place: the job name, instead of typing it at a prompt");
  cmd->add_flag("-n,--dry-run", args->dry_run, "print the plan and the exact syncoid command; touch nothing");
  cmd->callback([&g, &action, args] { action = [&g, args] { return cmd_restore(g, *args); }; });
}

}  // namespace hozo::cli
