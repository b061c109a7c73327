// `hozo init`: the first set-up of one job, interactive on a terminal or scripted with --yes
// (logic in init.cpp).
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "cli_internal.hpp"
#include "hozo/init.hpp"
#include "hozo/job.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/util/time.hpp"

namespace hozo::cli {

namespace {

struct InitArgs {
  InitAnswers answers;
  bool yes = false;
  bool force = false;
  bool offline = false;
  bool no_recursive = false;
  bool no_wol = false;
  std::string key_timeout = "10m";
};

/// Prints a line (or block) to stdout at once.
void say_line(std::string_view text) {
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  fmt::print("{}\n", text);
  std::fflush(stdout);
}

/// One line from the terminal; leaves with exit 2 at end of input.
std::string read_answer() {
  std::string line;
  if (!std::getline(std::cin, line)) {
    fmt::print("\n");
    leave(make_error(ExitCode::usage, "hozo init: input ended; nothing more was done"));
  }
  return std::string(trim(line));
}

/// "Question [default]: " on the terminal; Enter keeps the default.
std::string ask(std::string_view question, const std::string& current) {
  if (current.empty()) {
    fmt::print("{}: ", question);
  } else {
    fmt::print("{} [{}]: ", question, current);
  }
  std::fflush(stdout);
  std::string answer = read_answer();
  return answer.empty() ? current : answer;
}

bool ask_yes_no(std::string_view question, bool default_yes) {
  while (true) {
    fmt::print("{} [{}]: ", question, default_yes ? "Y/n" : "y/N");
    std::fflush(stdout);
    const std::string a = to_lower(read_answer());
    if (a.empty()) return default_yes;
    if (a == "y" || a == "yes") return true;
    if (a == "n" || a == "no") return false;
    fmt::print("please answer y or n\n");
  }
}

/// Asks one answer again (by field name as in validate_init_answers).
void ask_field(InitAnswers& a, const std::string& field) {
  if (field == "name") {
    a.name = ask("Job name (used in `hozo jobs run NAME`, unit and file names)", a.name);
  } else if (field == "source") {
    a.source = ask("Local dataset to back up (`zfs list` shows them)", a.source);
    a.recursive = ask_yes_no("Include its child datasets?", a.recursive);
  } else if (field == "target-host") {
    a.target_host = ask("Backup box: host name or address", a.target_host);
  } else if (field == "target-dataset") {
    a.target_dataset = ask("Dataset on the box to receive it (its parent must exist)",
                           a.target_dataset.empty() ? default_target_dataset(a.source) : a.target_dataset);
  } else if (field == "mac") {
    a.mac = ask("MAC address of the box's network card, for Wake-on-LAN (`ip link` on the box)", a.mac);
  } else if (field == "wol-broadcast") {
    a.wol_broadcast = ask("Wake-on-LAN broadcast address", a.wol_broadcast);
  } else if (field == "ssh-user") {
    a.ssh_user = ask("SSH user on the box", a.ssh_user);
  } else if (field == "ssh-port") {
    while (true) {
      const auto text = ask("SSH port of the box", std::to_string(a.ssh_port));
      const auto port = parse_int(text);
      if (port && *port >= 1 && *port <= 65535) {
        a.ssh_port = static_cast<int>(*port);
        break;
      }
      fmt::print("a port is a number from 1 to 65535\n");
    }
  } else if (field == "key") {
    a.ssh_key = ask("Private key file for hozo (created if missing, never overwritten)", a.ssh_key);
  } else if (field == "known-hosts") {
    a.known_hosts = ask("known_hosts file for the box's host key (Enter: hozo's default)", a.known_hosts);
  } else if (field == "schedule") {
    a.schedule = ask("Schedule (\"daily 02:00\" is UTC, cron and OnCalendar forms too; \"\" = manual)", a.schedule);
    if (a.schedule == "\"\"" || a.schedule == "manual") a.schedule.clear();
  }
}

/// The terminal: questions are asked, the key install waits for Enter.
class TerminalUi final : public InitUi {
 public:
  void say(std::string_view line) override { say_line(line); }
  bool confirm(std::string_view question) override { return ask_yes_no(question, false); }
  bool wait_for_key_install(std::string_view why) override {
    say_line(fmt::format("  the box does not accept the key yet: {}", why));
    fmt::print("Put the authorized_keys line above on the box, then press Enter to try again (or type \"skip\"): ");
    std::fflush(stdout);
    std::string a = read_answer();
    return to_lower(a) != "skip" && !g_cancel.load();
  }
};

/// --yes: every question answered yes; the key install is polled until the deadline.
class ScriptedUi final : public InitUi {
 public:
  explicit ScriptedUi(std::chrono::seconds timeout) : timeout_(timeout) {}
  void say(std::string_view line) override { say_line(line); }
  bool confirm(std::string_view question) override {
    say_line(fmt::format("  {} yes (--yes)", question));
    return true;
  }
  bool wait_for_key_install(std::string_view why) override {
    const auto now = std::chrono::steady_clock::now();
    if (!started_) {
      started_ = true;
      deadline_ = now + timeout_;
      if (timeout_.count() > 0) {
        say_line(fmt::format("… ssh login: not accepted yet ({}); waiting up to {} for the authorized_keys line to be "
                             "installed on the box (--key-timeout; Ctrl-C stops)",
                             why, format_duration(timeout_)));
      }
    }
    if (std::chrono::steady_clock::now() >= deadline_) return false;
    for (int i = 0; i < 30 && !g_cancel.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return !g_cancel.load();
  }

 private:
  std::chrono::seconds timeout_;
  bool started_ = false;
  std::chrono::steady_clock::time_point deadline_{};
};

std::string this_host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return printable(buf);
}

const char* const kAnswerOrder[] = {"name",     "source",   "target-host", "target-dataset", "mac",
                                    "wol-broadcast", "ssh-user", "ssh-port", "key",            "known-hosts",
                                    "schedule"};

int cmd_init(const Globals& g, InitArgs args) {
  const bool tty = ::isatty(STDIN_FILENO) == 1;
  if (!args.yes && !tty) {
    leave(make_error(ExitCode::usage,
                     "hozo init asks questions, but standard input is not a terminal. Script it with --yes and "
                     "the answers as options: --source DATASET --target-host HOST --mac MAC (or --no-wol), and "
                     "optionally --name, --target-dataset, --wol-broadcast, --ssh-user, --ssh-port, --key, "
                     "--known-hosts, --schedule, --from, --no-recursive, --key-timeout, --offline, --force "
                     "(see hozo(1)). Nothing was done"));
  }
  const auto timeout = parse_duration(args.key_timeout);
  if (!timeout) leave(make_error(ExitCode::usage, "--key-timeout: invalid duration \"{}\"", printable(args.key_timeout)));
  const std::filesystem::path path = config_path(g);
  std::error_code ec;
  if (!args.force && std::filesystem::symlink_status(path, ec).type() != std::filesystem::file_type::not_found) {
    leave(make_error(ExitCode::usage,
                     "{} already exists; hozo init does not replace a config (--force replaces it, keeping the old "
                     "one as {}.bak; -c FILE writes another). Nothing was done",
                     path.string(), path.string()));
  }
  InitAnswers& a = args.answers;
  a.recursive = !args.no_recursive;
  a.wol = !args.no_wol;
  if (a.ssh_key.empty()) a.ssh_key = default_key_path(path).string();

  if (!args.yes) {
    say_line(fmt::format("hozo init: one backup job in {}. Enter keeps the value in brackets.", path.string()));
    for (const char* field : kAnswerOrder) {
      if (!a.wol && (std::string_view(field) == "mac" || std::string_view(field) == "wol-broadcast")) continue;
      if (std::string_view(field) == "mac") {
        a.wol = ask_yes_no("Wake the box with Wake-on-LAN?", a.wol);
        if (!a.wol) continue;
      }
      ask_field(a, field);
    }
  }
  if (a.target_dataset.empty()) a.target_dataset = default_target_dataset(a.source);
  // Validate with the config validator; on a terminal ask again for what is wrong.
  for (int round = 0;; ++round) {
    auto issues = validate_init_answers(a);
    issues.erase("key");  // the key is made below; its file is checked with the final config
    if (issues.empty()) break;
    if (args.yes || round >= 5 || issues.contains("")) {
      std::string text;
      for (const auto& [field, message] : issues) {
        text += fmt::format("\n  {}{}", field.empty() ? "" : "--" + field + ": ", message);
      }
      leave(make_error(ExitCode::usage, "hozo init: the answers do not make a valid job:{}\nNothing was done", text));
    }
    for (const auto& [field, message] : issues) {
      say_line(fmt::format("  ✗ {}", message));
      ask_field(a, field);
    }
  }

  // from=: the address the box sees this machine connect from.
  if (a.from.empty()) {
    if (auto from = local_address_towards(a.target_host, a.ssh_port)) {
      a.from = *from;
    } else {
      say_line(fmt::format("! cannot tell this machine's address towards {} ({}); the authorized_keys line below has no "
                           "from= restriction: add one (--from ADDR)",
                           a.target_host, from.error().message));
    }
  }

  const auto key = unwrap(ensure_identity_key(expand_home(a.ssh_key), fmt::format("hozo-{}@{}", a.name, this_host_name())));
  a.ssh_key = key.private_path.string();
  const std::string text = render_init_config(a, iso8601_utc(std::chrono::system_clock::now()));
  std::vector<ConfigIssue> issues;
  if (auto parsed = parse_config(text, path.string(), &issues); !parsed) {
    leave(make_error(ExitCode::config, "hozo init: the generated config does not validate (a bug, please report "
                                       "it):\n{}\nNothing was written", parsed.error().message));
  }
  unwrap(write_init_config(path, text, args.force ? Overwrite::yes : Overwrite::no));
  const std::string line = authorized_keys_line(key.public_line, a.from);

  say_line(fmt::format("✓ config: wrote {} (mode 0600; `hozo config validate` passes)", path.string()));
  say_line(fmt::format("✓ key: {} {} ({})", key.created ? "generated" : "reusing the existing", key.private_path.string(),
                       key.fingerprint));
  say_line(fmt::format("\nAdd this line to ~{}/.ssh/authorized_keys on the box ({}), on one line:\n", a.ssh_user,
                       a.target_host));
  say_line(line);
  say_line(fmt::format("\n  e.g. on the box, as {0}: mkdir -p -m 700 ~/.ssh && echo '{1}' >> ~/.ssh/authorized_keys\n"
                       "  (from= lets only {2} use the key; restrict forbids forwarding and terminals but lets "
                       "syncoid run its commands)\n",
                       a.ssh_user, line, a.from.empty() ? "any address" : a.from));

  if (args.offline) {
    say_line(fmt::format("Next (--offline: the box was not contacted):\n"
                         "  hozo wake {0} && hozo wait {0}\n"
                         "  hozo hostkey {0}            # compare the fingerprint, then --accept\n"
                         "  hozo check {0} --wake\n"
                         "  hozo jobs run {0}",
                         a.name));
    return 0;
  }

  Globals online = g;
  online.config_path = path.string();
  const auto config = load(online);
  const Job& job = find_job(config, a.name);
  auto store = open_state(online, &config);
  auto systems = make_real_systems(&g_cancel);
  InitOnlineEnv env{*systems, store.dir(), path, &store, {}, {}, {}, {}, &g_cancel};
  TerminalUi terminal;
  ScriptedUi scripted(*timeout);
  InitUi& ui = args.yes ? static_cast<InitUi&>(scripted) : static_cast<InitUi&>(terminal);
  const auto result = run_init_online(job, env, ui);
  if (result.exit_code == 0) {
    say_line(fmt::format("\nDone. A first backup now:  hozo jobs run {0}\n"
                         "Then run it on its schedule ({1}):  hozo schedule --install --enable",
                         job.name, job.schedule.empty() ? "manual" : job.schedule));
  } else {
    say_line(fmt::format("\nThe config and key are in place; fix what is marked ✗, then `hozo check {} --wake`.",
                         job.name));
  }
  return result.exit_code;
}

}  // namespace

void add_init_command(CLI::App& app, Globals& g, Action& action) {
  auto args = std::make_shared<InitArgs>();
  auto& a = args->answers;
  auto* cmd = app.add_subcommand("init", "first set-up of one job: config, a dedicated SSH key, the authorized_keys "
                                         "line, the pinned host key, then `hozo check`");
  cmd->add_flag("-y,--yes", args->yes, "no questions: take the options and defaults, trust the host key shown");
  cmd->add_flag("--force", args->force, "replace an existing config (kept as FILE.bak); a key is never replaced");
  cmd->add_flag("--offline", args->offline, "write the config and key and print the line; do not contact the box");
  cmd->add_option("--name", a.name, "job name")->capture_default_str();
  cmd->add_option("--source", a.source, "local dataset to back up");
  cmd->add_flag("--no-recursive", args->no_recursive, "back up the dataset only, not its children");
  cmd->add_option("--target-host", a.target_host, "the backup box: host name or address");
  cmd->add_option("--target-dataset", a.target_dataset, "dataset on the box (default: backup/<last part of source>)");
  cmd->add_option("--mac", a.mac, "MAC address of the box, for Wake-on-LAN");
  cmd->add_flag("--no-wol", args->no_wol, "no Wake-on-LAN: the box is woken some other way or always on");
  cmd->add_option("--wol-broadcast", a.wol_broadcast, "broadcast address for the magic packet")->capture_default_str();
  cmd->add_option("--ssh-user", a.ssh_user, "SSH user on the box")->capture_default_str();
  cmd->add_option("--ssh-port", a.ssh_port, "SSH port of the box")->check(CLI::Range(1, 65535))->capture_default_str();
  cmd->add_option("--key", a.ssh_key, "private key file (default: id_ed25519 next to the config; created if missing)");
  cmd->add_option("--known-hosts", a.known_hosts, "known_hosts file for the box's host key (default: hozo's)");
  cmd->add_option("--schedule", a.schedule, "schedule of the job (\"\" = manual)")->capture_default_str();
  cmd->add_option("--from", a.from, "address for from= in the authorized_keys line (default: this machine's "
                                    "address towards the box)");
  cmd->add_option("--key-timeout", args->key_timeout, "with --yes: how long to wait for the box to accept the key "
                                                      "(0 = do not wait)")
      ->capture_default_str();
  cmd->callback([&g, &action, args] { action = [&g, args] { return cmd_init(g, *args); }; });
}

}  // namespace hozo::cli
