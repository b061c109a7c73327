#include "hozo/check.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "hozo/box.hpp"
#include "hozo/lock.hpp"
#include "hozo/net.hpp"
#include "hozo/process.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/wol.hpp"
#include "hozo/zfs.hpp"

namespace hozo {

namespace {

constexpr std::chrono::seconds kCommandTimeout{60};
constexpr Millis kLeaseTimeout{30000};

std::string first_line(std::string_view text) {
  for (const auto line : split_lines(text)) {
    if (!trim(line).empty()) return printable(trim(line));
  }
  return {};
}

std::string output_summary(const CommandOutput& out) {
  auto line = first_line(out.err);
  if (line.empty()) line = first_line(out.out);
  return line.empty() ? fmt::format("exit status {}", out.exit_status) : line;
}

bool mentions_missing(const CommandOutput& out) {
  return out.err.find("does not exist") != std::string::npos || out.err.find("no such") != std::string::npos;
}

}  // namespace

// ------------------------------------------------------------------ running the checks

namespace {

/// The target side of one dataset pair as the checks found it.
struct TargetInfo {
  bool checked = false;           ///< the target row ran and did not fail
  bool exists = false;            ///< the target dataset exists (incremental)
  std::string existing_ancestor;  ///< the target itself, or its nearest existing ancestor
};

class Checker {
 public:
  Checker(const Job& job, CheckEnv& env, const CheckOptions& options) : job_(job), env_(env), opt_(options) {
    rep_.job = job.name;
  }

  CheckReport run();

 private:
  void add(std::string name, CheckStatus status, std::string detail, std::string fix = {}) {
    rep_.rows.push_back(CheckRow{std::move(name), status, std::move(detail), std::move(fix)});
  }
  void add(CheckRow row) { rep_.rows.push_back(std::move(row)); }
  void skip(std::string name, const std::string& reason) { add(std::move(name), CheckStatus::skipped, reason); }
  [[nodiscard]] bool cancelled() const { return opt_.cancel != nullptr && opt_.cancel->load(); }

  std::optional<std::filesystem::path> find(std::string_view name) const {
    return env_.find_program ? env_.find_program(name) : find_program(name);
  }

  void local_checks();
  void hold_check(const DatasetPair& pair);
  void wol_check();
  void host_check();
  void agent_and_disk_checks();
  bool host_key_check();
  bool login_check();
  bool remote_zfs_check();
  void pool_checks();
  void target_checks();
  void permission_checks();
  void space_checks();
  void finish();

  Result<CommandOutput> remote(const std::vector<std::string>& argv) { return remote_->run(argv, kCommandTimeout); }
  Result<CommandOutput> local(const std::vector<std::string>& argv) { return env_.systems.local().run(argv, kCommandTimeout); }
  std::optional<std::uint64_t> local_property(const std::string& dataset, const std::string& property);
  struct Estimate {
    std::optional<std::uint64_t> bytes;
    std::string how;
    bool upper_bound = false;
  };
  Estimate estimate_send(const DatasetPair& pair, const TargetInfo& target);

  const Job& job_;
  CheckEnv& env_;
  const CheckOptions& opt_;
  CheckReport rep_;
  bool local_zfs_ = false;
  std::vector<bool> source_ok_;
  bool wake_possible_ = true;
  bool box_up_ = false;
  std::string remote_skip_;  ///< why the remote checks are skipped; empty = they run
  std::optional<HostLease> lease_;
  bool wake_sent_ = false;
  std::unique_ptr<CommandRunner> remote_;
  std::map<std::string, bool> pool_ok_;
  std::vector<TargetInfo> targets_;
};

void Checker::local_checks() {
  add("config", CheckStatus::ok, fmt::format("valid: {}", env_.config_path.empty() ? "-" : env_.config_path.string()));
  if (const auto syncoid = find(job_.syncoid.path)) {
    std::string detail = syncoid->string();
    if (!env_.find_program) {  // the real machine: say which release the argv is built for
      if (auto v = detect_syncoid_version(*syncoid)) {
        detail = fmt::format("{} (version {})", detail, v->str());
      } else {
        detail = fmt::format("{} (version unknown: {}; assuming {})", detail, v.error().message, kSyncoid210.str());
      }
    }
    add("syncoid", CheckStatus::ok, detail);
  } else {
    add("syncoid", CheckStatus::fail, fmt::format("\"{}\" not found in PATH nor {}", job_.syncoid.path, kSbinDirs),
        "install the sanoid package (apt install sanoid) or set syncoid.path");
  }
  if (const auto zfs = find("zfs")) {
    local_zfs_ = true;
    add("zfs (local)", CheckStatus::ok, zfs->string());
  } else {
    add("zfs (local)", CheckStatus::fail, fmt::format("zfs not found in PATH nor {}", kSbinDirs),
        "install ZFS (apt install zfsutils-linux)");
  }
  source_ok_.assign(job_.datasets.size(), false);
  for (std::size_t i = 0; i < job_.datasets.size(); ++i) {
    const auto& pair = job_.datasets[i];
    const std::string name = "source " + pair.source;
    if (auto v = validate_dataset_name(pair.source); !v) {
      add(name, CheckStatus::fail, v.error().message, "fix the dataset name in the config");
      continue;
    }
    if (auto v = validate_dataset_name(pair.target); !v) {
      add(name, CheckStatus::fail, "target: " + v.error().message, "fix the target dataset name in the config");
      continue;
    }
    if (!local_zfs_) {
      skip(name, "no local zfs");
      continue;
    }
    auto out = local({"zfs", "list", "-H", "-o", "name", pair.source});
    if (!out) {
      add(name, CheckStatus::fail, out.error().message);
    } else if (out->exit_status == 0) {
      source_ok_[i] = true;
      add(name, CheckStatus::ok, fmt::format("exists{}", pair.recursive ? " (recursive)" : ""));
      if (job_.hold_snapshots) hold_check(pair);
    } else if (mentions_missing(*out)) {
      add(name, CheckStatus::fail, fmt::format("{} does not exist on this machine", pair.source),
          fmt::format("create it, or fix the job's source in the config (`zfs list` shows what exists)"));
    } else {
      add(name, CheckStatus::fail, fmt::format("zfs list {}: {}", pair.source, output_summary(*out)));
    }
  }
}

/// The snapshots of the source that carry user holds (`zfs list -o name,userrefs`, which zfs-fuse
/// has too), with their tags where `zfs holds` works (OpenZFS).
void Checker::hold_check(const DatasetPair& pair) {
  const std::string name = "holds " + pair.source;
  auto out = local({"zfs", "list", "-H", "-o", "name,userrefs", "-t", "snapshot", "-d", "1", pair.source});
  if (!out || out->exit_status != 0) {
    skip(name, fmt::format("cannot list holds: {}", out ? output_summary(*out) : out.error().message));
    return;
  }
  std::vector<std::string> held;
  for (const auto line : split_lines(out->out)) {
    const auto fields = split(line, '\t');
    if (fields.size() != 2 || trim(fields[1]) == "0" || trim(fields[1]) == "-") continue;
    std::string entry(fields[0]);
    if (auto tags = local({"zfs", "holds", "-H", entry}); tags && tags->exit_status == 0) {
      std::vector<std::string> names;
      for (const auto t : split_lines(tags->out)) {
        const auto cols = split(t, '\t');
        if (cols.size() >= 2) names.emplace_back(trim(cols[1]));
      }
      if (!names.empty()) entry += " (" + join(names, ", ") + ")";
    } else {
      entry += fmt::format(" ({} hold(s))", trim(fields[1]));
    }
    held.push_back(std::move(entry));
  }
  if (held.empty()) {
    add(name, CheckStatus::ok,
        fmt::format("none yet: the next verified run holds its snapshot (zfs hold hozo:{})", job_.name));
  } else {
    add(name, CheckStatus::ok, join(held, ", "));
  }
}

void Checker::wol_check() {
  if (job_.wol_relay) {
    const auto& relay = *job_.wol_relay;
    const std::string name = "wol relay";
    auto mac = parse_mac(job_.mac_address);
    if (!mac) {
      wake_possible_ = false;
      add(name, CheckStatus::fail, mac.error().message, "set mac_address to the box's MAC");
      return;
    }
    if (auto argv = relay_wake_argv(relay, *mac, job_.wol_broadcast, job_.wol_port); !argv) {
      add(name, CheckStatus::fail, argv.error().message, "fix wol_relay.command");
      return;
    }
    const auto probe = env_.probe_relay ? env_.probe_relay(relay.host, relay.port)
                                        : probe_ssh(relay.host, relay.port, Millis(3000));
    if (probe.state == ProbeState::up) {
      add(name, CheckStatus::ok, fmt::format("relay {}@{}:{} answers ({})", relay.user, relay.host, relay.port, probe.banner));
    } else {
      add(name, CheckStatus::fail, fmt::format("relay {}:{} does not answer on SSH: {}", relay.host, relay.port, probe.describe()),
          "the relay must be always on and reachable; check wol_relay.host/port");
    }
    return;
  }
  if (job_.mac_address.empty()) {
    wake_possible_ = false;
    add("wol settings", CheckStatus::warn, "no mac_address: hozo cannot wake the box, it must already be on",
        "set mac_address (and enable Wake-on-LAN in the box's firmware)");
    return;
  }
  add(check_wol_settings(job_, env_.interfaces ? env_.interfaces() : list_local_interfaces()));
  if (rep_.rows.back().detail.empty()) rep_.rows.back().detail = "-";
}

void Checker::host_check() {
  const std::string name = "host";
  const std::string where = fmt::format("{}:{}", job_.target_host, job_.ssh_port);
  const auto probe = env_.systems.probe(job_);
  if (probe.state == ProbeState::up) {
    box_up_ = true;
    add(name, CheckStatus::ok, fmt::format("{} is up ({})", where, probe.banner));
    return;
  }
  if (!opt_.wake) {
    remote_skip_ = "box is off; use --wake";
    add(name, CheckStatus::warn,
        fmt::format("{} does not answer ({}): the box is off or unreachable; not a failure by itself, but the remote "
                    "checks were skipped",
                    where, probe.describe()),
        fmt::format("`hozo check {} --wake` wakes it for the check and powers it off again", job_.name));
    return;
  }
  if (!wake_possible_) {
    remote_skip_ = "box is off and cannot be woken";
    add(name, CheckStatus::fail, fmt::format("{} does not answer ({}) and cannot be woken (see wol)", where, probe.describe()),
        "fix the Wake-on-LAN settings, or switch the box on");
    return;
  }
  if (!env_.state_dir.empty()) {
    auto lease = HostLease::acquire(env_.state_dir, job_.target_host, HostSharing::concurrent, kLeaseTimeout);
    if (!lease) {
      remote_skip_ = "host lease not available";
      add(name, CheckStatus::fail, lease.error().message, "a job holds the box exclusively; try again later");
      return;
    }
    lease_.emplace(std::move(*lease));
  }
  auto sent = env_.systems.wake(job_);
  if (!sent) {
    remote_skip_ = "the wake failed";
    add(name, CheckStatus::fail, fmt::format("{} is off; wake failed: {}", where, sent.error().message),
        "check the Wake-on-LAN settings (`hozo wake NAME` shows the same error)");
    return;
  }
  wake_sent_ = true;
  if (lease_) {
    if (auto m = lease_->mark_woken(fmt::format("check-{}", ::getpid())); !m) spdlog::warn("{}", m.error().message);
  }
  auto outcome = wait_for_box(env_.systems, job_, opt_.cancel);
  if (!outcome) {
    remote_skip_ = "the box did not come up";
    if (outcome.error().code == ExitCode::interrupted) {
      rep_.interrupted = true;
      remote_skip_ = "interrupted";
    }
    add(name, CheckStatus::fail, fmt::format("woken, but: {}", outcome.error().message),
        "check mac_address and wol_broadcast, that Wake-on-LAN is enabled in the box's firmware, and ssh_timeout");
    return;
  }
  box_up_ = true;
  rep_.woke = true;
  add(name, CheckStatus::ok,
      fmt::format("{} was off; woken, answered after {} ({} probes, {} resends)", where, format_duration(outcome->elapsed),
                  outcome->probes, outcome->resends));
}

bool Checker::host_key_check() {
  const std::string name = "host key";
  const auto opts = ssh_options_for(job_);
  auto info = env_.fetch_host_key ? env_.fetch_host_key(opts) : fetch_host_key(opts);
  if (!info) {
    add(name, CheckStatus::fail, info.error().message, "check target_host and ssh_port");
    return false;
  }
  const std::string key = fmt::format("{} {}", info->key_type, info->fingerprint);
  const std::string compare = "compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the box";
  switch (info->state) {
    case HostKeyState::known:
      add(name, CheckStatus::ok, fmt::format("{} known in {}", key, opts.known_hosts.string()));
      return true;
    case HostKeyState::unknown:
      if (job_.host_key_policy == HostKeyPolicy::accept_new) {
        add(name, CheckStatus::warn,
            fmt::format("{} is not in {} yet; host_key_policy accept-new pins it on the first run", key,
                        opts.known_hosts.string()),
            fmt::format("{}, then pin it now: `hozo hostkey {} --accept`", compare, job_.name));
        return true;
      }
      add(name, CheckStatus::fail, fmt::format("{} is unknown: not in {} (host_key_policy strict)", key, opts.known_hosts.string()),
          fmt::format("run `hozo hostkey {} --accept` after comparing the fingerprint ({})", job_.name, compare));
      return false;
    case HostKeyState::changed:
    case HostKeyState::other:
      add(name, CheckStatus::fail,
          fmt::format("the box presents {}, but {} records {}: the key CHANGED (possible attack)", key,
                      opts.known_hosts.string(),
                      info->recorded_fingerprints.empty() ? "another key" : join(info->recorded_fingerprints, ", ")),
          fmt::format("only if the box was reinstalled: `ssh-keygen -R '{}' -f {}`, then `hozo hostkey {} --accept`",
                      info->host_entry, opts.known_hosts.string(), job_.name));
      return false;
  }
  return false;
}

bool Checker::login_check() {
  const std::string name = "ssh login";
  const auto opts = ssh_options_for(job_);
  Job job = job_;
  std::filesystem::path scratch;
  if (job_.host_key_policy == HostKeyPolicy::accept_new) {
    // accept-new would pin an unknown key during the login; check writes nothing, so it logs in
    // against a scratch copy of known_hosts.
    char tmpl[] = "/tmp/hozo-check-known_hosts.XXXXXX";
    const int fd = ::mkstemp(tmpl);
    if (fd >= 0) {
      ::close(fd);
      scratch = tmpl;
      if (auto text = read_file(opts.known_hosts)) (void)write_file_atomic(scratch, *text, 0600);
      job.known_hosts = scratch.string();
    }
  }
  auto connected = env_.systems.connect(job);
  if (!scratch.empty()) {
    std::error_code ec;
    std::filesystem::remove(scratch, ec);
  }
  if (!connected) {
    const auto& msg = connected.error().message;
    const bool auth = msg.find("auth") != std::string::npos || msg.find("denied") != std::string::npos ||
                      msg.find("rejected") != std::string::npos || msg.find("key") != std::string::npos;
    add(name, CheckStatus::fail, msg,
        auth ? fmt::format("add the public key of ssh_key ({}.pub) to ~{}/.ssh/authorized_keys on the box",
                           job_.ssh_key.empty() ? "~/.ssh/id_ed25519" : job_.ssh_key, job_.ssh_user)
             : "check target_host, ssh_port, ssh_user and ssh_key");
    return false;
  }
  remote_ = std::move(*connected);
  add(name, CheckStatus::ok, fmt::format("logged in as {}", remote_->where()));
  return true;
}

bool Checker::remote_zfs_check() {
  const std::string name = "zfs (box)";
  auto out = remote({"zfs", "version"});
  if (!out) {
    add(name, CheckStatus::fail, out.error().message);
    return false;
  }
  if (out->exit_status == 0) {
    add(name, CheckStatus::ok, first_line(out->out).empty() ? "present" : first_line(out->out));
    return true;
  }
  if (out->exit_status == 127 || out->err.find("not found") != std::string::npos) {
    add(name, CheckStatus::fail, fmt::format("zfs not found on the box ({})", output_summary(*out)),
        "install ZFS on the box (apt install zfsutils-linux) or put zfs in the login PATH");
    return false;
  }
  add(name, CheckStatus::ok, "present (no `zfs version`: an older ZFS or zfs-fuse)");
  return true;
}

/// backupd (when job.agent is set) and the backup disk (when backup_device is set): read-only
/// looks, no spin-up read (the sync would do that).
void Checker::agent_and_disk_checks() {
  if (job_.agent) {
    auto st = env_.systems.agent_status(job_);
    if (!st) {
      add("backupd", CheckStatus::warn,
          fmt::format("{}; hozo falls back to SSH for pool health, disk and shutdown", st.error().message),
          "on the box: `systemctl status backupd`; compare agent.url and agent.token_file with backupd.yaml");
    } else {
      const auto& s = **st;
      add("backupd", CheckStatus::ok,
          fmt::format("{} answers{}, {} pool(s)", job_.agent->url, s.version.empty() ? "" : " (" + s.version + ")",
                      s.pools.size()));
    }
  }
  if (job_.backup_device.empty()) return;
  auto control = env_.systems.disk_control(job_, *remote_);
  auto o = control->observe();
  if (!o) {
    add("backup disk", CheckStatus::fail, o.error().message, "check backup_device and the SSH login");
  } else if (!o->present) {
    add("backup disk", CheckStatus::fail,
        fmt::format("{} is not there: {}", job_.backup_device, o->detail),
        "is the disk connected and powered? compare backup_device with `ls -l /dev/disk/by-id/` on the box");
  } else {
    add("backup disk", CheckStatus::ok,
        fmt::format("{}: {} via {}{}", job_.backup_device, to_string(o->state), control->describe(),
                    o->state == SpinState::active ? "" : " (a run spins it up first)"));
  }
}

void Checker::pool_checks() {
  std::vector<std::string> pools;
  for (const auto& pair : job_.datasets) {
    const auto pool = pool_of(pair.target);
    if (std::find(pools.begin(), pools.end(), pool) == pools.end()) pools.push_back(pool);
  }
  for (const auto& pool : pools) {
    const std::string name = "pool " + pool;
    pool_ok_[pool] = false;
    auto imported = pool_imported(*remote_, pool, kCommandTimeout);
    if (!imported) {
      add(name, CheckStatus::fail, imported.error().message);
      continue;
    }
    if (!*imported) {
      if (!job_.target_pool_import) {
        add(name, CheckStatus::fail, fmt::format("{} is not imported on the box (target_pool_import: false)", pool),
            fmt::format("`zpool import {}` on the box or set target_pool_import: true", pool));
        continue;
      }
      // `zpool import` without a pool name only lists what could be imported (searching the
      // job's target_pool_import_dirs, as the run's import does).
      std::vector<std::string> list_argv{"zpool", "import"};
      for (const auto& dir : job_.target_pool_import_dirs) {
        list_argv.emplace_back("-d");
        list_argv.push_back(dir);
      }
      auto listing = remote(list_argv);
      std::optional<ImportCandidate> candidate;
      if (listing) {
        for (auto& c : parse_import_listing(listing->out)) {
          if (c.pool == pool) candidate = std::move(c);
        }
      }
      if (candidate && candidate->needs_force()) {
        add(name, CheckStatus::fail,
            fmt::format("{} is not imported; `zpool import` lists it but wants -f (last used by another system)", pool),
            fmt::format("export it on the other system, or `zpool import -f {}` on the box once", pool));
      } else if (candidate) {
        add(name, CheckStatus::warn, fmt::format("{} is not imported; `zpool import` lists it, the run imports it", pool),
            fmt::format("nothing to do, or import it now: `zpool import {}` on the box", pool));
      } else {
        add(name, CheckStatus::fail, fmt::format("{} is not imported on the box and `zpool import` does not list it", pool),
            "check the pool part of target_dataset (`zpool list` on the box) and that the backup disk is connected");
      }
      continue;
    }
    auto health = zpool_health(*remote_, pool, kCommandTimeout);
    if (!health) {
      add(name, CheckStatus::fail, health.error().message);
    } else if (health->online()) {
      pool_ok_[pool] = true;
      add(name, CheckStatus::ok, fmt::format("imported, {}", health->health));
    } else if (health->health == "DEGRADED") {
      pool_ok_[pool] = true;
      add(name, CheckStatus::warn, "imported, DEGRADED (the run writes anyway)",
          fmt::format("`zpool status {}` on the box; replace the failed device", pool));
    } else {
      add(name, CheckStatus::fail, fmt::format("imported, {}: the run refuses to write", health->health),
          fmt::format("`zpool status -x {}` on the box", pool));
    }
  }
}

void Checker::target_checks() {
  targets_.assign(job_.datasets.size(), TargetInfo{});
  for (std::size_t i = 0; i < job_.datasets.size(); ++i) {
    const auto& pair = job_.datasets[i];
    const std::string name = "target " + pair.target;
    if (validate_dataset_name(pair.target).ok() == false) {
      skip(name, "invalid name");
      continue;
    }
    if (!pool_ok_[pool_of(pair.target)]) {
      skip(name, "target pool not usable");
      continue;
    }
    std::string current = pair.target;
    bool failed = false;
    bool found = false;
    int depth = 0;
    while (!current.empty()) {
      auto out = remote({"zfs", "list", "-H", "-o", "name", current});
      if (!out) {
        add(name, CheckStatus::fail, out.error().message);
        failed = true;
        break;
      }
      if (out->exit_status == 0) {
        found = true;
        break;
      }
      if (!mentions_missing(*out)) {
        add(name, CheckStatus::fail, fmt::format("zfs list {}: {}", current, output_summary(*out)));
        failed = true;
        break;
      }
      const auto slash = current.rfind('/');
      current = slash == std::string::npos ? std::string() : current.substr(0, slash);
      ++depth;
    }
    if (failed) continue;
    if (!found) {
      add(name, CheckStatus::fail, "neither the dataset nor its pool exists on the box");
      continue;
    }
    TargetInfo& t = targets_[i];
    t.existing_ancestor = current;
    if (depth == 0) {
      t.checked = true;
      t.exists = true;
      add(name, CheckStatus::ok, "exists: the next sync is incremental");
    } else if (depth == 1) {
      t.checked = true;
      add(name, CheckStatus::ok, fmt::format("does not exist yet: the first sync is a full send into {}", current));
    } else {
      const auto parent = pair.target.substr(0, pair.target.rfind('/'));
      add(name, CheckStatus::fail, fmt::format("its parent {} does not exist (nearest existing: {})", parent, current),
          fmt::format("`zfs create -p {}` on the box", parent));
    }
  }
}

void Checker::permission_checks() {
  const std::string name = "permissions";
  if (job_.ssh_user == "root") {
    add(name, CheckStatus::ok, "ssh_user root: no delegation needed");
    return;
  }
  if (!job_.no_privilege_elevation) {
    auto out = remote({"sudo", "-n", "true"});
    if (out && out->exit_status == 0) {
      add(name, CheckStatus::ok, fmt::format("{} may sudo without a password (syncoid elevates on the box)", job_.ssh_user));
    } else {
      add(name, CheckStatus::fail,
          fmt::format("{} is not root and `sudo -n true` failed: {}", job_.ssh_user,
                      out ? output_summary(*out) : out.error().message),
          fmt::format("allow {} passwordless sudo for zfs on the box, or set no_privilege_elevation: true and "
                      "delegate with `zfs allow`",
                      job_.ssh_user));
    }
    return;
  }
  AllowSubject subject{job_.ssh_user, {}};
  if (auto ids = remote({"id", "-Gn"}); ids && ids->exit_status == 0) {
    for (const auto g : split(trim(ids->out), ' ')) {
      if (!trim(g).empty()) subject.groups.emplace_back(trim(g));
    }
  }
  std::vector<std::string> all = required_receive_permissions();
  all.insert(all.end(), recommended_receive_permissions().begin(), recommended_receive_permissions().end());
  for (std::size_t i = 0; i < job_.datasets.size(); ++i) {
    const auto& t = targets_.size() > i ? targets_[i] : TargetInfo{};
    const std::string row = "permissions " + job_.datasets[i].target;
    if (!t.checked) {
      skip(row, "target not checked");
      continue;
    }
    auto out = remote({"zfs", "allow", t.existing_ancestor});
    if (!out || out->exit_status != 0) {
      add(row, CheckStatus::fail, fmt::format("zfs allow {}: {}", t.existing_ancestor, out ? output_summary(*out) : out.error().message));
      continue;
    }
    auto perms = parse_zfs_allow(out->out, t.existing_ancestor, subject);
    if (!perms) {
      add(row, CheckStatus::fail, perms.error().message);
      continue;
    }
    std::vector<std::string> missing_required;
    std::vector<std::string> missing_recommended;
    for (const auto& p : required_receive_permissions()) {
      if (!perms->contains(p)) missing_required.push_back(p);
    }
    for (const auto& p : recommended_receive_permissions()) {
      if (!perms->contains(p)) missing_recommended.push_back(p);
    }
    const auto fix = fmt::format("as root on the box: `zfs allow -u {} {} {}`", job_.ssh_user, join(all, ","),
                                 t.existing_ancestor);
    if (!missing_required.empty()) {
      add(row, CheckStatus::fail,
          fmt::format("{} lacks {} on {} (needed by zfs receive)", job_.ssh_user, join(missing_required, ","), t.existing_ancestor),
          fix);
    } else if (!missing_recommended.empty()) {
      add(row, CheckStatus::warn,
          fmt::format("{} may receive on {}, but lacks {} (rollback of a diverged target, pruning sync snapshots)",
                      job_.ssh_user, t.existing_ancestor, join(missing_recommended, ",")),
          fix);
    } else {
      add(row, CheckStatus::ok, fmt::format("{} has {} on {}", job_.ssh_user, join(all, ","), t.existing_ancestor));
    }
  }
}

std::optional<std::uint64_t> Checker::local_property(const std::string& dataset, const std::string& property) {
  auto out = local({"zfs", "get", "-H", "-p", "-o", "value", property, dataset});
  if (!out || out->exit_status != 0) return std::nullopt;
  return parse_property_u64(out->out);
}

Checker::Estimate Checker::estimate_send(const DatasetPair& pair, const TargetInfo& target) {
  const auto recursive = pair.recursive ? Recursive::yes : Recursive::no;
  const Snapshot* newest = nullptr;
  SnapshotListing source;
  if (auto listing = list_snapshots(env_.systems.local(), pair.source, recursive, kCommandTimeout)) {
    source = std::move(*listing);
    const auto it = source.snapshots.find(pair.source);
    if (it != source.snapshots.end()) newest = newest_snapshot(it->second);
  }
  // The fallback: what the source occupies (with descendants when recursive), an upper bound of a full send.
  const auto fallback = [&](std::string why, bool upper_bound) {
    Estimate e;
    auto used = local_property(pair.source, "used");
    if (used && !pair.recursive) {
      if (auto children = local_property(pair.source, "usedbychildren"); children && *children <= *used) *used -= *children;
    }
    e.bytes = used;
    e.how = fmt::format("{}; estimated from the source's used space", why);
    e.upper_bound = upper_bound;
    return e;
  };
  if (newest == nullptr) return fallback(fmt::format("{} has no snapshot yet", pair.source), false);
  std::vector<std::string> argv{"zfs", "send", "-n", "-v", "-P"};
  if (pair.recursive) argv.emplace_back("-R");
  std::string what = "full";
  if (target.exists) {
    std::optional<Snapshot> common;
    if (auto remote_listing = list_snapshots(*remote_, pair.target, Recursive::no, kCommandTimeout)) {
      const auto it = remote_listing->snapshots.find(pair.target);
      if (it != remote_listing->snapshots.end()) {
        for (auto s = it->second.rbegin(); s != it->second.rend() && !common; ++s) {
          for (const auto& mine : source.snapshots[pair.source]) {
            if (mine.guid == s->guid) {
              common = mine;
              break;
            }
          }
        }
      }
    }
    if (!common) return fallback("no common snapshot found with the target", true);
    if (common->guid == newest->guid) {
      return Estimate{0, fmt::format("{} is already on the target; only changes since then will be sent", newest->full_name()), false};
    }
    argv.emplace_back("-I");
    argv.push_back("@" + common->name);
    what = fmt::format("incremental from @{}", common->name);
  }
  argv.push_back(newest->full_name());
  auto out = local(argv);
  if (out && out->exit_status == 0) {
    if (auto size = parse_send_size(out->out + "\n" + out->err)) {
      return Estimate{size, fmt::format("`zfs send -nvP` {} to {}, plus changes since", what, newest->full_name()), false};
    }
  }
  return fallback("`zfs send -nvP` is not supported here", target.exists);
}

void Checker::space_checks() {
  for (std::size_t i = 0; i < job_.datasets.size(); ++i) {
    const auto& pair = job_.datasets[i];
    const std::string name = "space " + pair.target;
    const TargetInfo& t = targets_.size() > i ? targets_[i] : TargetInfo{};
    if (!t.checked) {
      skip(name, "target not checked");
      continue;
    }
    if (!source_ok_[i]) {
      skip(name, "source not available");
      continue;
    }
    auto out = remote({"zfs", "get", "-H", "-p", "-o", "value", "available", t.existing_ancestor});
    std::optional<std::uint64_t> avail;
    if (out && out->exit_status == 0) avail = parse_property_u64(out->out);
    if (!avail) {
      add(name, CheckStatus::fail,
          fmt::format("cannot read the free space of {}: {}", t.existing_ancestor,
                      out ? output_summary(*out) : out.error().message));
      continue;
    }
    const auto estimate = estimate_send(pair, t);
    if (!estimate.bytes) {
      add(name, CheckStatus::warn,
          fmt::format("{} available on {}; the send size is unknown ({})", format_bytes(*avail), t.existing_ancestor,
                      estimate.how),
          "check the size by hand: `zfs send -nvP` on this machine");
      continue;
    }
    const auto need = *estimate.bytes;
    const std::string detail = fmt::format("{}~{} to send, {} available on {} ({})", estimate.upper_bound ? "at most " : "",
                                           format_bytes(need), format_bytes(*avail), t.existing_ancestor, estimate.how);
    const auto fix = fmt::format("free space on the box (`zfs list -o space -r {}`, destroy old snapshots) or use a "
                                 "bigger backup disk",
                                 pool_of(pair.target));
    if (need > *avail) {
      add(name, estimate.upper_bound ? CheckStatus::warn : CheckStatus::fail, detail, fix);
    } else if (static_cast<double>(need) > 0.8 * static_cast<double>(*avail)) {
      add(name, CheckStatus::warn, detail + "; over 80% of the free space", fix);
    } else {
      add(name, CheckStatus::ok, detail);
    }
  }
}

void Checker::finish() {
  remote_.reset();  // close our session before the box goes down
  if (!wake_sent_) return;
  const std::string name = "power off";
  if (!box_up_) {
    // Like the pipeline: the woken marker stays, a later run that reaches the box powers it off.
    add(name, CheckStatus::warn, "check sent a wake but the box never answered; it cannot be powered off over SSH",
        fmt::format("look at the box; `hozo shutdown {}` once it answers", job_.name));
    return;
  }
  // The same decision as the pipeline's shutdown stage (finish_host_use): only the last user of
  // the host powers it off, and only when hozo woke it. Without a state directory (no lease) the
  // box check woke is simply powered off.
  ShutdownResult sd;
  if (lease_) {
    sd = finish_host_use(*lease_, env_.systems, job_, /*box_up=*/true, PowerOffRules{true, true});
  } else if (auto off = env_.systems.power_off(job_); !off) {
    sd = {ShutdownOutcome::failed, off.error().message};
  } else {
    sd = {ShutdownOutcome::done, power_off_detail(env_.systems, job_)};
  }
  switch (sd.outcome) {
    case ShutdownOutcome::done:
      rep_.powered_off = true;
      add(name, CheckStatus::ok, fmt::format("check woke the box; {}", sd.message));
      break;
    case ShutdownOutcome::skipped_in_use:
      add(name, CheckStatus::ok, "left on: another job uses the box now; the last one powers it off");
      break;
    case ShutdownOutcome::failed:
      add(name, CheckStatus::fail, fmt::format("check woke the box but could not power it off: {}", sd.message),
          fmt::format("`hozo shutdown {}`", job_.name));
      break;
    case ShutdownOutcome::skipped_not_woken:
    case ShutdownOutcome::not_requested:
      add(name, CheckStatus::ok, "left on: the woken marker is gone (someone else took over the box)");
      break;
  }
}

CheckReport Checker::run() {
  local_checks();
  wol_check();
  std::vector<std::string> remote_rows{"host key", "ssh login", "zfs (box)"};
  if (job_.agent) remote_rows.emplace_back("backupd");
  if (!job_.backup_device.empty()) remote_rows.emplace_back("backup disk");
  for (const char* row : {"pools", "targets", "permissions", "space"}) remote_rows.emplace_back(row);
  // Marks every row from `first` on as skipped.
  const auto skip_from = [&](std::string_view first, const std::string& reason) {
    const auto it = std::find(remote_rows.begin(), remote_rows.end(), first);
    for (auto i = it; i != remote_rows.end(); ++i) skip(*i, reason);
  };
  if (cancelled()) {
    rep_.interrupted = true;
    skip_from("host key", "interrupted");
    return rep_;
  }
  host_check();
  if (!box_up_) {
    skip_from("host key", remote_skip_.empty() ? "box not reachable" : remote_skip_);
  } else if (!host_key_check()) {
    skip_from("ssh login", "host key not trusted");
  } else if (!login_check()) {
    skip_from("zfs (box)", "no SSH login");
  } else if (!remote_zfs_check()) {
    skip_from(remote_rows[3], "no zfs on the box");
  } else if (cancelled()) {
    rep_.interrupted = true;
    skip_from(remote_rows[3], "interrupted");
  } else {
    agent_and_disk_checks();
    pool_checks();
    target_checks();
    permission_checks();
    if (cancelled()) {
      rep_.interrupted = true;
      skip_from("space", "interrupted");
    } else {
      space_checks();
    }
  }
  finish();
  return rep_;
}

}  // namespace

CheckReport run_checks(const Job& job, CheckEnv& env, const CheckOptions& options) {
  Checker checker(job, env, options);
  return checker.run();
}

std::vector<CheckReport> run_checks_for_jobs(const std::vector<const Job*>& jobs, CheckEnv& env,
                                             const CheckOptions& options) {
  std::vector<CheckReport> reports;
  std::map<std::string, std::size_t> left;  // jobs still to check per host
  for (const Job* job : jobs) ++left[job->target_host];
  struct Group {
    HostLease lease;                 ///< the extra lease of a host checked for several jobs
    std::size_t last_report = 0;     ///< the newest report of a job on this host
    const Job* last_job = nullptr;
  };
  std::map<std::string, Group> groups;
  // The power-off the individual checks of a group left to "the last user".
  const auto finish_group = [&](Group& group) {
    const Job& job = *group.last_job;
    const bool up = env.systems.probe(job).state == ProbeState::up;
    const auto sd = finish_host_use(group.lease, env.systems, job, up, PowerOffRules{true, true});
    auto& last = reports[group.last_report];
    if (sd.outcome == ShutdownOutcome::done) {
      last.powered_off = true;
      last.rows.push_back({"power off", CheckStatus::ok, fmt::format("check woke the box; {}", sd.message), ""});
    } else if (sd.outcome == ShutdownOutcome::failed) {
      last.rows.push_back({"power off", CheckStatus::fail,
                           fmt::format("check woke the box but could not power it off: {}", sd.message),
                           fmt::format("`hozo shutdown {}`", job.name)});
    }
  };
  for (const Job* job : jobs) {
    if (options.cancel != nullptr && options.cancel->load()) break;
    const auto& host = job->target_host;
    if (options.wake && !env.state_dir.empty() && left[host] > 1 && !groups.contains(host)) {
      auto lease = HostLease::acquire(env.state_dir, host, HostSharing::concurrent, kLeaseTimeout);
      if (lease) {
        // As the pipeline does: a marker left by a crashed run must not make check power off a
        // box someone else switched on.
        if (lease->first_user() && env.systems.probe(*job).state == ProbeState::up) {
          if (env.state != nullptr) {
            (void)settle_woken_marker(*lease, *env.state, *job);
          } else {
            (void)lease->clear_woken();
          }
        }
        groups.emplace(host, Group{std::move(*lease)});
      }
    }
    reports.push_back(run_checks(*job, env, options));
    const bool last_of_host = --left[host] == 0;
    const auto it = groups.find(host);
    if (it == groups.end()) continue;
    it->second.last_report = reports.size() - 1;
    it->second.last_job = job;
    if (!last_of_host) continue;
    finish_group(it->second);
    groups.erase(it);
  }
  // Interrupted part-way: a box the group woke is powered off all the same (as a run does).
  for (auto& [host, group] : groups) {
    if (group.last_job != nullptr) finish_group(group);
  }
  return reports;
}

}  // namespace hozo
