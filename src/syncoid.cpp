#include "hozo/syncoid.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include <fmt/format.h>

#include "hozo/syncoid_version.hpp"
#include "hozo/transfer.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/zfs.hpp"

namespace hozo {
namespace {

bool is_alnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

bool all_of_chars(std::string_view s, std::string_view extra) noexcept {
  return std::all_of(s.begin(), s.end(), [&](char c) { return is_alnum(c) || extra.find(c) != std::string_view::npos; });
}

bool has_control(std::string_view s) noexcept {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// Characters allowed in values syncoid pastes unquoted into its shell command lines.
constexpr std::string_view kPathChars = "_./+@%:,-";
// Same plus space, for values that syncoid splits into several words on purpose.
constexpr std::string_view kWordsChars = "_./+@%:,=- ";

Result<void> check_path(std::string_view what, std::string_view path) {
  if (path.empty()) return make_error(ExitCode::config, "syncoid: {} is not set", what);
  if (path.front() != '/') return make_error(ExitCode::config, "syncoid: {} \"{}\" must be an absolute path", what, printable(path));
  if (!all_of_chars(path, kPathChars)) {
    return make_error(ExitCode::config,
                      "syncoid: {} \"{}\" contains characters syncoid cannot pass safely (allowed: A-Z a-z 0-9 {})",
                      what, printable(path), kPathChars);
  }
  return ok();
}

Result<void> check_host(std::string_view host) {
  if (host.empty()) return make_error(ExitCode::config, "syncoid: target host is not set");
  if (host.find(':') != std::string_view::npos) {
    return make_error(ExitCode::config,
                      "syncoid: target host \"{}\": IPv6 literals cannot be used in syncoid's USER@HOST:DATASET form; "
                      "use a host name",
                      printable(host));
  }
  if (host.size() > 253 || !is_alnum(host.front()) || !all_of_chars(host, "._-")) {
    return make_error(ExitCode::config, "syncoid: invalid target host \"{}\"", printable(host));
  }
  return ok();
}

Result<void> check_user(std::string_view user) {
  if (user.empty() || user.size() > 32 || user.front() == '-' || !all_of_chars(user, "._-")) {
    return make_error(ExitCode::config, "syncoid: invalid ssh user \"{}\"", printable(user));
  }
  return ok();
}

Result<void> check_compress(std::string_view value, const SyncoidVersion& version) {
  if (!syncoid_has_compress(version, value)) {
    return make_error(ExitCode::config,
                      "syncoid: compress \"{}\" is not supported by the installed syncoid {} (gzip, pigz-fast, "
                      "pigz-slow, zstd-fast, zstd-slow, lz4, xz, lzo, none{})",
                      printable(value), version.str(),
                      version >= kSyncoid230 ? ", zstdmt-fast, zstdmt-slow" : "; zstdmt-* need syncoid 2.3.0");
  }
  return ok();
}

// "10M", "512k", "1.5G", "1000000": a number with an optional unit letter.
Result<void> check_bwlimit(std::string_view what, std::string_view value) {
  std::size_t i = 0;
  while (i < value.size() && value[i] >= '0' && value[i] <= '9') ++i;
  bool valid = i > 0;
  if (valid && i < value.size() && value[i] == '.') {
    const std::size_t start = ++i;
    while (i < value.size() && value[i] >= '0' && value[i] <= '9') ++i;
    valid = i > start;
  }
  if (valid && i < value.size() && std::string_view("kKmMgGtTbB").find(value[i]) != std::string_view::npos) ++i;
  if (!valid || i != value.size()) {
    return make_error(ExitCode::config, "syncoid: {} \"{}\" must be a number with an optional unit (k, M, G, T)", what,
                      printable(value));
  }
  return ok();
}

// Mirrors syncoid's parsespecialoptions(): space-separated words of option letters, where the
// `valued` letters ('o', 'x'; 2.3.0 also 'X') take the next word as their value. Letters syncoid
// would silently drop are rejected so the config means what it says.
Result<void> check_special_options(std::string_view what, std::string_view value, std::string_view allowed,
                                   std::string_view valued, bool recursive, const SyncoidVersion& version) {
  if (!all_of_chars(value, "_.,:/= -")) {
    return make_error(ExitCode::config, "syncoid: {} \"{}\" contains characters syncoid cannot pass safely", what,
                      printable(value));
  }
  bool expect_value = false;
  for (const auto word : split(value, ' ')) {
    if (word.empty()) {
      return make_error(ExitCode::config, "syncoid: {} \"{}\": use single spaces between words", what, value);
    }
    if (expect_value) {
      expect_value = false;
      continue;
    }
    for (const char c : word) {
      if (expect_value) {
        return make_error(ExitCode::config,
                          "syncoid: {} \"{}\": an option with a value ({}) must end a word; its value follows after a space",
                          what, value, valued);
      }
      if (allowed.find(c) == std::string_view::npos) {
        return make_error(ExitCode::config,
                          "syncoid: {} \"{}\": option '{}' is not passed on by the installed syncoid {} (allowed: {})",
                          what, value, c, version.str(), allowed);
      }
      if (c == 'R' && recursive) {
        return make_error(ExitCode::config, "syncoid: {} \"{}\": zfs send -R cannot be combined with recursive", what,
                          value);
      }
      if (valued.find(c) != std::string_view::npos) expect_value = true;
    }
  }
  if (expect_value) return make_error(ExitCode::config, "syncoid: {} \"{}\": the last option needs a value", what, value);
  return ok();
}

// flag: no value; value: --name=VALUE pasted into syncoid's shell lines (safe characters only);
// path: an absolute file; pattern: a Perl regex syncoid never gives to a shell (any printable text).
enum class ExtraKind { flag, value, path, pattern, mapped, trust, unsafe };

struct ExtraOption {
  std::string_view name;
  ExtraKind kind;
  std::string_view note;                 // config key for `mapped`, the reason for `unsafe`
  SyncoidVersion since = kSyncoid210;    // first release with the option
  SyncoidVersion until{99, 0, 0};        // first release without it
};

constexpr SyncoidVersion kNever{99, 0, 0};

// Every long option of GetOptions in syncoid 2.1.0, 2.2.0 and 2.3.0 (plus --help/--version from
// Getopt::Long's auto_help/auto_version), with the releases that have it.
constexpr std::array<ExtraOption, 45> kSyncoidOptions{{
    {"no-command-checks", ExtraKind::flag, ""},
    {"monitor-version", ExtraKind::flag, ""},
    {"dumpsnaps", ExtraKind::flag, ""},
    {"debug", ExtraKind::flag, ""},
    {"quiet", ExtraKind::flag, ""},
    {"no-stream", ExtraKind::flag, ""},
    {"no-resume", ExtraKind::flag, ""},
    {"skip-parent", ExtraKind::flag, ""},
    {"no-clone-handling", ExtraKind::flag, ""},
    {"force-delete", ExtraKind::flag, ""},
    {"no-clone-rollback", ExtraKind::flag, "", kSyncoid210, kSyncoid220},
    {"no-rollback", ExtraKind::flag, ""},
    {"keep-sync-snap", ExtraKind::flag, ""},
    {"preserve-recordsize", ExtraKind::flag, ""},
    {"sshcipher", ExtraKind::value, ""},
    {"c", ExtraKind::value, ""},
    {"pv-options", ExtraKind::value, ""},
    {"mbuffer-size", ExtraKind::value, ""},
    {"compress", ExtraKind::mapped, "syncoid.compress"},
    {"recursive", ExtraKind::mapped, "recursive (per dataset)"},
    {"sendoptions", ExtraKind::mapped, "syncoid.sendoptions"},
    {"recvoptions", ExtraKind::mapped, "syncoid.recvoptions"},
    {"source-bwlimit", ExtraKind::mapped, "syncoid.source_bwlimit"},
    {"target-bwlimit", ExtraKind::mapped, "syncoid.target_bwlimit"},
    {"identifier", ExtraKind::mapped, "syncoid.identifier"},
    {"exclude", ExtraKind::mapped, "syncoid.exclude"},
    {"exclude-datasets", ExtraKind::mapped, "syncoid.exclude", kSyncoid230, kNever},
    {"include-snaps", ExtraKind::pattern, "", kSyncoid230, kNever},
    {"exclude-snaps", ExtraKind::pattern, "", kSyncoid230, kNever},
    {"use-hold", ExtraKind::flag, "", kSyncoid220, kNever},
    {"delete-target-snapshots", ExtraKind::flag, "", kSyncoid220, kNever},
    {"preserve-properties", ExtraKind::flag, "", kSyncoid220, kNever},
    {"sshconfig", ExtraKind::path, "", kSyncoid220, kNever},
    {"insecure-direct-connection", ExtraKind::unsafe,
     "sends the data unencrypted and unauthenticated over a direct TCP connection", kSyncoid220, kNever},
    {"create-bookmark", ExtraKind::mapped, "syncoid.create_bookmark"},
    {"no-sync-snap", ExtraKind::mapped, "syncoid.no_sync_snap"},
    {"no-privilege-elevation", ExtraKind::mapped, "no_privilege_elevation"},
    {"sshkey", ExtraKind::trust, ""},
    {"sshport", ExtraKind::trust, ""},
    {"sshoption", ExtraKind::trust, ""},
    {"o", ExtraKind::trust, ""},
    {"r", ExtraKind::mapped, "recursive (per dataset)"},
    {"help", ExtraKind::unsafe, "would make syncoid exit without syncing"},
    {"version", ExtraKind::unsafe, "would make syncoid exit without syncing"},
}};

Result<void> check_extra_arg(std::string_view arg, const SyncoidVersion& version) {
  if (arg.empty()) return make_error(ExitCode::config, "syncoid.extra_args: empty argument");
  if (has_control(arg)) {
    return make_error(ExitCode::config, "syncoid.extra_args: \"{}\" contains a control character (newline, NUL, ...)",
                      printable(arg));
  }
  std::string_view body;
  if (arg.starts_with("--")) {
    body = arg.substr(2);
  } else if (arg.starts_with("-") && arg.size() >= 2) {
    body = arg.substr(1);  // Getopt::Long also accepts single-dash long options
  } else {
    return make_error(ExitCode::config,
                      "syncoid.extra_args: \"{}\" is not an option; extra_args hold options only (--name or --name=value)",
                      printable(arg));
  }
  const auto eq = body.find('=');
  const auto name = body.substr(0, eq);
  const auto value = eq == std::string_view::npos ? std::string_view() : body.substr(eq + 1);

  // Getopt::Long accepts unique abbreviations (--sshopt means --sshoption), so an argument
  // that abbreviates a hozo-owned option is rejected as if it were the option itself.
  const ExtraOption* found = nullptr;
  for (const auto& option : kSyncoidOptions) {
    if (option.name == name) {
      found = &option;
      break;
    }
  }
  const auto in_release = [&](const ExtraOption& o) { return version >= o.since && version < o.until; };
  if (found == nullptr && !name.empty()) {
    for (const auto& option : kSyncoidOptions) {
      if (option.kind == ExtraKind::trust && option.name.size() > 1 && option.name.starts_with(name) &&
          in_release(option)) {
        found = &option;
        break;
      }
    }
  }
  if (found == nullptr || name.empty()) {
    return make_error(ExitCode::config, "syncoid.extra_args: \"{}\" is not an option of syncoid (2.1.0 to 2.3.0)",
                      printable(arg));
  }
  if (version < found->since) {
    return make_error(ExitCode::config,
                      "syncoid.extra_args: \"{}\": --{} needs syncoid {} or later; the installed syncoid is {}",
                      printable(arg), found->name, found->since.str(), version.str());
  }
  if (version >= found->until) {
    return make_error(ExitCode::config,
                      "syncoid.extra_args: \"{}\": --{} was removed in syncoid {}; the installed syncoid is {}",
                      printable(arg), found->name, found->until.str(), version.str());
  }
  switch (found->kind) {
    case ExtraKind::trust:
      return make_error(ExitCode::config,
                        "syncoid.extra_args: \"{}\": hozo sets the ssh key, port and options itself so syncoid uses "
                        "the pinned host key; use ssh_key/ssh_port/known_hosts",
                        printable(arg));
    case ExtraKind::mapped:
      return make_error(ExitCode::config, "syncoid.extra_args: \"{}\": use the config key {} instead", printable(arg),
                        found->note);
    case ExtraKind::unsafe:
      return make_error(ExitCode::config, "syncoid.extra_args: \"{}\" {}", printable(arg), found->note);
    case ExtraKind::flag:
      if (eq != std::string_view::npos) {
        return make_error(ExitCode::config, "syncoid.extra_args: \"{}\": --{} takes no value", printable(arg), name);
      }
      return ok();
    case ExtraKind::value:
      if (value.empty()) {
        return make_error(ExitCode::config, "syncoid.extra_args: \"{}\": write --{}=VALUE as one argument",
                          printable(arg), name);
      }
      if (!all_of_chars(value, kWordsChars)) {
        return make_error(ExitCode::config,
                          "syncoid.extra_args: \"{}\": the value contains characters syncoid cannot pass safely",
                          printable(arg));
      }
      return ok();
    case ExtraKind::path:
      if (value.empty()) {
        return make_error(ExitCode::config, "syncoid.extra_args: \"{}\": write --{}=/ABSOLUTE/PATH as one argument",
                          printable(arg), name);
      }
      return check_path(fmt::format("extra_args --{}", name), value);
    case ExtraKind::pattern:
      if (value.empty()) {
        return make_error(ExitCode::config, "syncoid.extra_args: \"{}\": write --{}=REGEX as one argument",
                          printable(arg), name);
      }
      return ok();  // control characters were rejected above; syncoid only matches it in Perl
  }
  return ok();
}

}  // namespace

SyncoidSshTrust syncoid_trust_for(const Job& job, std::string key_path, std::string known_hosts) {
  SyncoidSshTrust trust;
  trust.key_path = std::move(key_path);
  trust.known_hosts = std::move(known_hosts);
  trust.port = job.ssh_port;
  trust.host_key_policy = job.host_key_policy;
  trust.connect_timeout = job.ssh_connect_timeout;
  // A dead link is noticed after ServerAliveInterval x ServerAliveCountMax: at most 1 minute,
  // sooner when the job asks for short SSH timeouts.
  trust.server_alive_interval = std::min(trust.server_alive_interval, std::max(job.ssh_connect_timeout, std::chrono::seconds(1)));
  return trust;
}

namespace {

/// Which way the data flows: the backup (local -> box) or a restore (box -> local).
enum class Direction { push, pull };

/// Program path, ssh trust and the mapped job.syncoid options, in the push argv's order. The pull
/// leaves out what describes the backup side only (bandwidth limits, identifier, bookmarks,
/// recvoptions) and always adds --no-sync-snap.
Result<void> append_options(const Job& job, bool recursive, const SyncoidSshTrust& trust, Direction direction,
                            const SyncoidVersion& version, std::vector<std::string>& argv) {
  const SyncoidSettings& s = job.syncoid;
  const bool push = direction == Direction::push;
  argv.reserve(24 + s.exclude.size() + s.extra_args.size());

  if (s.path.empty() || s.path.front() == '-' || has_control(s.path)) {
    return make_error(ExitCode::config, "syncoid: invalid program path \"{}\"", printable(s.path));
  }
  argv.push_back(s.path);

  // ssh trust: the pinned key, nothing else.
  if (auto r = check_path("ssh key", trust.key_path); !r) return std::move(r).error();
  if (auto r = check_path("known_hosts file", trust.known_hosts); !r) return std::move(r).error();
  if (trust.port < 1 || trust.port > 65535) {
    return make_error(ExitCode::config, "syncoid: ssh port {} is out of range", trust.port);
  }
  if (trust.connect_timeout.count() < 1 || trust.server_alive_interval.count() < 1 || trust.server_alive_count_max < 1) {
    return make_error(ExitCode::config, "syncoid: ssh timeouts must be at least 1");
  }
  argv.push_back("--sshkey=" + trust.key_path);
  argv.push_back(fmt::format("--sshport={}", trust.port));
  argv.push_back("--sshoption=UserKnownHostsFile=" + trust.known_hosts);
  argv.emplace_back("--sshoption=GlobalKnownHostsFile=/dev/null");
  argv.emplace_back("--sshoption=StrictHostKeyChecking=yes");
  argv.emplace_back("--sshoption=BatchMode=yes");
  argv.emplace_back("--sshoption=IdentitiesOnly=yes");
  argv.push_back(fmt::format("--sshoption=ConnectTimeout={}", trust.connect_timeout.count()));
  argv.push_back(fmt::format("--sshoption=ServerAliveInterval={}", trust.server_alive_interval.count()));
  argv.push_back(fmt::format("--sshoption=ServerAliveCountMax={}", trust.server_alive_count_max));

  if (recursive) argv.emplace_back("--recursive");
  if (job.no_privilege_elevation) argv.emplace_back("--no-privilege-elevation");
  if (!s.compress.empty()) {
    if (auto r = check_compress(s.compress, version); !r) return std::move(r).error();
    argv.push_back("--compress=" + s.compress);
  }
  if (push && !s.source_bwlimit.empty()) {
    if (auto r = check_bwlimit("source_bwlimit", s.source_bwlimit); !r) return std::move(r).error();
    argv.push_back("--source-bwlimit=" + s.source_bwlimit);
  }
  if (push && !s.target_bwlimit.empty()) {
    if (auto r = check_bwlimit("target_bwlimit", s.target_bwlimit); !r) return std::move(r).error();
    argv.push_back("--target-bwlimit=" + s.target_bwlimit);
  }
  if (push && !s.identifier.empty()) {
    if (!all_of_chars(s.identifier, "-_:.")) {
      return make_error(ExitCode::config, "syncoid: identifier \"{}\" may contain only A-Z a-z 0-9 - _ : .",
                        printable(s.identifier));
    }
    argv.push_back("--identifier=" + s.identifier);
  }
  for (const auto& pattern : s.exclude) {
    if (pattern.empty() || has_control(pattern)) {
      return make_error(ExitCode::config, "syncoid: exclude pattern \"{}\" is empty or contains a control character",
                        printable(pattern));
    }
    // 2.3.0 deprecates --exclude (a warning on every run) for --exclude-datasets, which 2.1/2.2 lack.
    argv.push_back((syncoid_has_exclude_datasets(version) ? "--exclude-datasets=" : "--exclude=") + pattern);
  }
  if (push && s.create_bookmark) {
    if (!s.no_sync_snap) {
      return make_error(ExitCode::config,
                        "syncoid: create_bookmark only works together with no_sync_snap (syncoid ignores it otherwise)");
    }
    argv.emplace_back("--create-bookmark");
  }
  if (s.no_sync_snap || !push) argv.emplace_back("--no-sync-snap");
  if (!s.sendoptions.empty()) {
    if (auto r = check_special_options("sendoptions", s.sendoptions, syncoid_send_option_letters(version),
                                       syncoid_valued_option_letters(version), recursive, version);
        !r) {
      return std::move(r).error();
    }
    argv.push_back("--sendoptions=" + s.sendoptions);
  }
  if (push && !s.recvoptions.empty()) {
    if (auto r = check_special_options("recvoptions", s.recvoptions, "hoxuv", syncoid_valued_option_letters(version),
                                       false, version);
        !r) {
      return std::move(r).error();
    }
    argv.push_back("--recvoptions=" + s.recvoptions);
  }
  // pv draws nothing when its stderr is a pipe: ask for byte counts, one line a second
  // (transfer.hpp reads them), unless the user chose pv's options in extra_args.
  const bool own_pv = std::any_of(s.extra_args.begin(), s.extra_args.end(), [](const std::string& a) {
    return a.starts_with("--pv-options=") || a.starts_with("-pv-options=");
  });
  if (push && !own_pv) argv.push_back(fmt::format("--pv-options={}", kHozoPvOptions));
  for (const auto& arg : s.extra_args) {
    if (auto r = check_extra_arg(arg, version); !r) return std::move(r).error();
    argv.push_back(arg);
  }
  return ok();
}

}  // namespace

Result<std::vector<std::string>> build_syncoid_argv(const Job& job, const DatasetPair& pair,
                                                    const SyncoidSshTrust& trust, const SyncoidVersion& version) {
  std::vector<std::string> argv;
  if (auto r = append_options(job, pair.recursive, trust, Direction::push, version, argv); !r) {
    return std::move(r).error();
  }
  if (auto r = validate_dataset_name(pair.source); !r) {
    return make_error(ExitCode::config, "syncoid source: {}", r.error().message);
  }
  if (auto r = validate_dataset_name(pair.target); !r) {
    return make_error(ExitCode::config, "syncoid target: {}", r.error().message);
  }
  if (auto r = check_user(job.ssh_user); !r) return std::move(r).error();
  if (auto r = check_host(job.target_host); !r) return std::move(r).error();
  argv.push_back(pair.source);
  argv.push_back(job.ssh_user + "@" + job.target_host + ":" + pair.target);
  return argv;
}

Result<std::vector<std::string>> build_syncoid_pull_argv(const Job& job, std::string_view remote_dataset,
                                                         std::string_view local_dataset, const SyncoidSshTrust& trust,
                                                         const SyncoidPullOptions& options,
                                                         const SyncoidVersion& version) {
  std::vector<std::string> argv;
  if (auto r = append_options(job, options.recursive, trust, Direction::pull, version, argv); !r) {
    return std::move(r).error();
  }
  if (options.force_delete) argv.emplace_back("--force-delete");
  if (auto r = validate_dataset_name(remote_dataset); !r) {
    return make_error(ExitCode::usage, "syncoid source (on the box): {}", r.error().message);
  }
  if (auto r = validate_dataset_name(local_dataset); !r) {
    return make_error(ExitCode::usage, "syncoid target (local): {}", r.error().message);
  }
  if (auto r = check_user(job.ssh_user); !r) return std::move(r).error();
  if (auto r = check_host(job.target_host); !r) return std::move(r).error();
  argv.push_back(job.ssh_user + "@" + job.target_host + ":" + std::string(remote_dataset));
  argv.emplace_back(local_dataset);
  return argv;
}

SyncoidOutcome classify_syncoid_exit(int exit_code, std::string_view stderr_tail) {
  SyncoidOutcome outcome;
  outcome.exit_code = exit_code;
  if (exit_code == 0) {
    outcome.status = SyncoidStatus::ok;
    outcome.reason = "syncoid finished";
    return outcome;
  }
  if (exit_code == 127) {
    outcome.status = SyncoidStatus::usage;
    outcome.reason = "syncoid rejected its arguments (exit 127)";
    return outcome;
  }
  outcome.status = exit_code == 1 ? SyncoidStatus::transient : SyncoidStatus::critical;

  // Small on purpose: only causes where waiting and trying again plausibly helps.
  static constexpr std::array<std::string_view, 6> kPermanent{
      "has been modified",  "host key verification failed", "remote host identification has changed",
      "permission denied", "no space left",                  "out of space"};
  static constexpr std::array<std::string_view, 6> kTransient{
      "dataset is busy",     "is already target of a zfs receive process",
      "connection reset",    "connection timed out",
      "broken pipe",         "connection closed by"};
  const std::string text = to_lower(stderr_tail);
  for (const auto phrase : kPermanent) {
    if (text.find(phrase) != std::string::npos) {
      outcome.cause = SyncoidCause::permanent;
      outcome.matched = phrase;
      break;
    }
  }
  if (outcome.cause == SyncoidCause::unknown) {
    for (const auto phrase : kTransient) {
      if (text.find(phrase) != std::string::npos) {
        outcome.cause = SyncoidCause::transient;
        outcome.matched = phrase;
        break;
      }
    }
  }
  const std::string_view kind = exit_code == 1 ? "partial/transient failure" : "critical failure";
  switch (outcome.cause) {
    case SyncoidCause::permanent:
      outcome.reason = fmt::format("syncoid exit {} ({}); permanent cause: \"{}\"", exit_code, kind, outcome.matched);
      break;
    case SyncoidCause::transient:
      outcome.reason = fmt::format("syncoid exit {} ({}); transient cause: \"{}\"", exit_code, kind, outcome.matched);
      break;
    case SyncoidCause::unknown:
      outcome.reason = fmt::format("syncoid exit {} ({})", exit_code, kind);
      break;
  }
  return outcome;
}

bool should_retry(const SyncoidOutcome& outcome, int attempt, int retries) {
  if (attempt > retries) return false;
  switch (outcome.status) {
    case SyncoidStatus::ok:
    case SyncoidStatus::usage:
      return false;
    case SyncoidStatus::transient:
      return outcome.cause != SyncoidCause::permanent;
    case SyncoidStatus::critical:
      return outcome.cause == SyncoidCause::transient;
  }
  return false;
}

std::string describe_command(const std::vector<std::string>& argv) { return shell_join(argv); }

}  // namespace hozo
