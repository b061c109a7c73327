// `hozo config validate` and `hozo config example`.

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_internal.hpp"
#include "hozo/config.hpp"
#include "hozo/config_json.hpp"
#include "hozo/keycheck.hpp"
#include "hozo/util/exit_code.hpp"
#include "hozo/util/strings.hpp"

namespace hozo::cli {

namespace {

int cmd_config_validate(const Globals& g, const std::string& file, bool local_checks) {
  const std::filesystem::path path = file.empty() ? config_path(g) : std::filesystem::path(file);
  std::vector<ConfigIssue> issues;
  auto config = load_config(path, &issues, JobErrors::isolate);
  if (config && local_checks) {
    for (const auto& job : config->jobs) {
      for (auto& issue : check_ssh_files(job)) issues.push_back(std::move(issue));
    }
  }
  std::stable_partition(issues.begin(), issues.end(),
                        [](const ConfigIssue& i) { return i.severity == Severity::error; });
  const auto errors = static_cast<std::size_t>(std::count_if(
      issues.begin(), issues.end(), [](const ConfigIssue& i) { return i.severity == Severity::error; }));
  const std::size_t warnings = issues.size() - errors;
  const int rc = errors > 0 ? to_int(ExitCode::config) : 0;
  std::vector<std::string> usable;
  std::vector<std::string> broken;
  if (config) {
    for (const auto& job : config->jobs) {
      // A job whose own files are wrong (key missing, ...) cannot run either.
      const bool bad = std::any_of(issues.begin(), issues.end(), [&](const ConfigIssue& i) {
        return i.severity == Severity::error && i.job == job.name;
      });
      (bad ? broken : usable).push_back(job.name);
    }
    for (const auto& b : config->broken_jobs) broken.push_back(b.name);
  }
  if (g.json) {
    auto list = nlohmann::json::array();
    for (const auto& issue : issues) list.push_back(issue_json(issue));
    print_json({{"file", path.string()},
                {"valid", errors == 0},
                {"errors", errors},
                {"warnings", warnings},
                {"jobs", usable},
                {"broken_jobs", broken},
                {"issues", list},
                {"notices", config ? nlohmann::json(config->notices) : nlohmann::json::array()}});
    return rc;
  }
  for (const auto& issue : issues) fmt::print(stderr, "{}\n", issue.to_string());
  if (config) {
    for (const auto& notice : config->notices) fmt::print(stderr, "notice: {}\n", notice);
  }
  if (errors > 0) {
    fmt::print(stderr, "hozo: {} is not valid: {} error(s){}{}\n", path.string(), errors,
               warnings > 0 ? fmt::format(", {} warning(s)", warnings) : std::string(),
               broken.empty() ? std::string()
                              : fmt::format("; job(s) that cannot run: {}{}", join(broken, ", "),
                                            usable.empty() ? std::string()
                                                           : fmt::format(" (the others can: {})", join(usable, ", "))));
    return rc;
  }
  if (!g.quiet) {
    fmt::print("{}: OK, {} job(s){}\n", path.string(), usable.size(),
               warnings > 0 ? fmt::format(", {} warning(s)", warnings) : std::string());
  }
  return 0;
}

/// What `config validate` was given.
struct ValidateOptions {
  std::string file;
  bool no_local_checks = false;
};

}  // namespace

void add_config_command(CLI::App& app, Globals& g, Action& action) {
  auto* config_cmd = app.add_subcommand("config", "check or print configuration");
  config_cmd->require_subcommand(1);
  auto o = std::make_shared<ValidateOptions>();
  auto* validate = config_cmd->add_subcommand("validate", "validate a config file (exit 0, or 78 with every issue)");
  validate->add_option("FILE", o->file, "config file (default: the one hozo would use)");
  validate->add_flag("--no-local-checks", o->no_local_checks,
                     "skip the checks of this machine's files (SSH keys, known_hosts), e.g. for a config meant "
                     "for another machine");
  validate->callback([&g, &action, o] {
    action = [&g, o] { return cmd_config_validate(g, o->file, !o->no_local_checks); };
  });
  config_cmd->add_subcommand("example", "print an annotated example config")->callback([&action] {
    action = [] {
      fmt::print("{}", example_config());
      return 0;
    };
  });
}

}  // namespace hozo::cli
