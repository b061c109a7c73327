// `hozo check`: the pure pieces (WOL address logic, `zfs allow` parsing, send sizes) and the
// check sequence with fake systems (skips, wake + power-off decisions, nothing that writes).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hozo/check.hpp"
#include "hozo/lock.hpp"
#include "hozo/util/strings.hpp"
#include "test_support.hpp"

using namespace hozo;

namespace {

std::uint32_t ip(const char* text) { return *parse_ipv4(text); }

LocalInterface iface(std::string name, const char* address, const char* mask, const char* broadcast, bool up = true) {
  LocalInterface i;
  i.name = std::move(name);
  i.up = up;
  i.ipv4.push_back(Ipv4Address{ip(address), ip(mask), broadcast == nullptr ? 0 : ip(broadcast)});
  return i;
}

std::vector<LocalInterface> lan() {
  LocalInterface lo = iface("lo", "127.0.0.1", "255.0.0.0", nullptr);
  lo.loopback = true;
  return {lo, iface("eth0", "192.168.1.10", "255.255.255.0", "192.168.1.255"),
          iface("eth1", "10.8.0.1", "255.255.0.0", nullptr)};
}

Job wol_job(std::string broadcast, std::string interface_name = {}) {
  Job job;
  job.name = "nightly";
  job.mac_address = "aa:bb:cc:dd:ee:ff";
  job.wol_broadcast = std::move(broadcast);
  job.wol_interface = std::move(interface_name);
  return job;
}

// ------------------------------------------------------------------------------ WOL settings

TEST(CheckWol, ParseIpv4) {
  EXPECT_EQ(parse_ipv4("192.168.1.255"), 0xC0A801FFU);
  EXPECT_EQ(parse_ipv4("0.0.0.0"), 0U);
  EXPECT_EQ(parse_ipv4("255.255.255.255"), 0xFFFFFFFFU);
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", "a.b.c.d", "1..2.3", "1.2.3.0004", "box"}) {
    EXPECT_FALSE(parse_ipv4(bad).has_value()) << bad;
  }
  EXPECT_EQ(format_ipv4(0xC0A801FFU), "192.168.1.255");
}

TEST(CheckWol, LimitedBroadcastIsOk) {
  const auto row = check_wol_settings(wol_job("255.255.255.255"), lan());
  EXPECT_EQ(row.status, CheckStatus::ok) << row.detail;
  EXPECT_NE(row.detail.find("limited broadcast"), std::string::npos);
}

TEST(CheckWol, DirectedBroadcastOfALocalSubnetIsOk) {
  const auto row = check_wol_settings(wol_job("192.168.1.255"), lan());
  EXPECT_EQ(row.status, CheckStatus::ok) << row.detail;
  EXPECT_NE(row.detail.find("eth0"), std::string::npos);
  EXPECT_NE(row.detail.find("192.168.1.0/24"), std::string::npos);
}

TEST(CheckWol, BroadcastComputedFromTheMaskWhenTheKernelReportsNone) {
  const auto row = check_wol_settings(wol_job("10.8.255.255"), lan());
  EXPECT_EQ(row.status, CheckStatus::ok) << row.detail;
  EXPECT_NE(row.detail.find("eth1"), std::string::npos);
}

TEST(CheckWol, UnicastOnALocalSubnetWarnsAndNamesTheBroadcast) {
  const auto row = check_wol_settings(wol_job("192.168.1.20"), lan());
  EXPECT_EQ(row.status, CheckStatus::warn);
  EXPECT_NE(row.fix.find("192.168.1.255"), std::string::npos) << row.fix;
}

TEST(CheckWol, BroadcastOfARemoteSubnetFails) {
  const auto row = check_wol_settings(wol_job("192.168.7.255"), lan());
  EXPECT_EQ(row.status, CheckStatus::fail);
  EXPECT_NE(row.detail.find("192.168.1.255 (eth0)"), std::string::npos) << row.detail;
  EXPECT_EQ(row.detail.find("127."), std::string::npos) << "loopback is no candidate: " << row.detail;
  EXPECT_NE(row.fix.find("wol_relay"), std::string::npos);
}

TEST(CheckWol, LoopbackBroadcastDoesNotCount) {
  EXPECT_EQ(check_wol_settings(wol_job("127.255.255.255"), lan()).status, CheckStatus::fail);
}

TEST(CheckWol, HostNameWarns) {
  EXPECT_EQ(check_wol_settings(wol_job("bcast.example.net"), lan()).status, CheckStatus::warn);
}

TEST(CheckWol, MissingInterfaceFailsAndListsTheOthers) {
  const auto row = check_wol_settings(wol_job("255.255.255.255", "wlan9"), lan());
  EXPECT_EQ(row.status, CheckStatus::fail);
  EXPECT_NE(row.fix.find("eth0"), std::string::npos);
}

TEST(CheckWol, InterfaceDownWarns) {
  auto ifs = lan();
  ifs[1].up = false;
  const auto row = check_wol_settings(wol_job("192.168.1.255", "eth0"), ifs);
  EXPECT_EQ(row.status, CheckStatus::warn);
  EXPECT_NE(row.detail.find("down"), std::string::npos);
}

TEST(CheckWol, BroadcastOfAnotherInterfaceThanWolInterfaceWarns) {
  const auto row = check_wol_settings(wol_job("192.168.1.255", "eth1"), lan());
  EXPECT_EQ(row.status, CheckStatus::warn);
  EXPECT_NE(row.fix.find("eth0"), std::string::npos);
}

TEST(CheckWol, RealInterfacesCanBeListed) {
  const auto ifs = list_local_interfaces();
  EXPECT_TRUE(std::any_of(ifs.begin(), ifs.end(), [](const LocalInterface& i) { return i.loopback; }));
}

// ------------------------------------------------------------------------------ zfs allow

const char* kAllowOutput =
    "---- Permissions on backup/data ---------------------------------------\n"
    "Local permissions:\n"
    "\tuser backup rollback\n"
    "\tuser other destroy\n"
    "---- Permissions on backup --------------------------------------------\n"
    "Permission sets:\n"
    "\t@recv create,mount,@more\n"
    "\t@more receive\n"
    "Create time permissions:\n"
    "\tdestroy\n"
    "Local permissions:\n"
    "\tuser backup snapshot\n"
    "Descendent permissions:\n"
    "\tgroup staff hold\n"
    "Local+Descendent permissions:\n"
    "\tuser backup @recv\n"
    "\teveryone userprop\n";

TEST(CheckAllow, EffectivePermissionsOfTheDataset) {
  auto perms = parse_zfs_allow(kAllowOutput, "backup/data", AllowSubject{"backup", {"backup", "staff"}});
  ASSERT_TRUE(perms) << perms.error().message;
  // rollback: local on the dataset; create/mount/receive: the set, local+descendent on the parent;
  // hold: descendent on the parent for the group; userprop: everyone.
  EXPECT_EQ(*perms, (std::set<std::string>{"create", "hold", "mount", "receive", "rollback", "userprop"}));
}

TEST(CheckAllow, LocalPermissionsOfAnAncestorDoNotCount) {
  auto perms = parse_zfs_allow(kAllowOutput, "backup/data", AllowSubject{"backup", {}});
  ASSERT_TRUE(perms);
  EXPECT_FALSE(perms->contains("snapshot"));  // local on backup only
  EXPECT_FALSE(perms->contains("hold"));      // group staff, not ours
  EXPECT_FALSE(perms->contains("destroy"));   // another user's, and create-time
}

TEST(CheckAllow, DescendentPermissionsDoNotCountOnTheDatasetItself) {
  auto perms = parse_zfs_allow(kAllowOutput, "backup", AllowSubject{"backup", {"staff"}});
  ASSERT_TRUE(perms);
  EXPECT_TRUE(perms->contains("snapshot"));
  EXPECT_TRUE(perms->contains("receive"));
  EXPECT_FALSE(perms->contains("hold"));
  EXPECT_FALSE(perms->contains("rollback"));
}

TEST(CheckAllow, SimilarNamesAreNoAncestors) {
  auto perms = parse_zfs_allow(kAllowOutput, "backup2/data", AllowSubject{"backup", {}});
  ASSERT_TRUE(perms);
  EXPECT_TRUE(perms->empty());
}

TEST(CheckAllow, EmptyOutputMeansNoPermissions) {
  auto perms = parse_zfs_allow("", "backup", AllowSubject{"backup", {}});
  ASSERT_TRUE(perms);
  EXPECT_TRUE(perms->empty());
}

TEST(CheckAllow, MalformedOutputIsAnError) {
  EXPECT_FALSE(parse_zfs_allow("Weird heading:\n", "backup", AllowSubject{"u", {}}));
  EXPECT_FALSE(parse_zfs_allow("\tuser u create\n", "backup", AllowSubject{"u", {}}));
  EXPECT_FALSE(parse_zfs_allow("---- Permissions on backup ----\nLocal permissions:\n\tsomething odd here now\n", "backup",
                               AllowSubject{"u", {}}));
}

TEST(CheckAllow, RecursiveSetsTerminate) {
  const char* text =
      "---- Permissions on b ----\n"
      "Permission sets:\n\t@a @b,create\n\t@b @a,mount\n"
      "Local permissions:\n\tuser u @a\n";
  auto perms = parse_zfs_allow(text, "b", AllowSubject{"u", {}});
  ASSERT_TRUE(perms);
  EXPECT_TRUE(perms->contains("create"));
  EXPECT_TRUE(perms->contains("mount"));
}

// ------------------------------------------------------------------------------ send size

TEST(CheckSendSize, ParsesTheSizeLine) {
  EXPECT_EQ(parse_send_size("full\ttank/data@s2\t1048576\nsize\t1048576\n"), 1048576U);
  EXPECT_EQ(parse_send_size("incremental\ts1\ttank/data@s2\t4096\nincremental\ts2\ttank/data@s3\t8192\nsize\t12288\n"),
            12288U);
  EXPECT_FALSE(parse_send_size("full\ttank/data@s2\t1048576\n").has_value());
  EXPECT_FALSE(parse_send_size("size\tlots\n").has_value());
  EXPECT_FALSE(parse_send_size("size\t99999999999999999999999\n").has_value());
}

TEST(CheckSendSize, FormatBytes) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(std::uint64_t{3} << 30), "3.0 GiB");
}

// ------------------------------------------------------------------------------ run_checks with fakes

/// A runner owned by the fake systems; the unique_ptr connect() hands out forwards to it.
class ForwardingRunner final : public CommandRunner {
 public:
  explicit ForwardingRunner(FakeCommandRunner& target) : target_(target) {}
  Result<CommandOutput> run(const std::vector<std::string>& argv, std::chrono::seconds timeout) override {
    return target_.run(argv, timeout);
  }
  [[nodiscard]] std::string where() const override { return "root@box:22"; }

 private:
  FakeCommandRunner& target_;
};

class FakeClock final : public Clock {
 public:
  SystemTime now() const override { return SystemTime{} + offset_; }
  std::chrono::steady_clock::time_point steady_now() const override { return std::chrono::steady_clock::time_point{} + offset_; }
  void sleep_for(Millis d) override { offset_ += d; }

 private:
  Millis offset_{0};
};

CommandOutput out(std::string text) { return CommandOutput{0, std::move(text), ""}; }
CommandOutput fail(int status, std::string err) { return CommandOutput{status, "", std::move(err)}; }

/// The local machine and the box as the checks see them.
class FakeWorld final : public JobSystems {
 public:
  // box
  bool up = false;
  bool wakes_up = true;
  bool login_ok = true;
  bool remote_zfs = true;
  std::map<std::string, std::string> pools{{"backup", "ONLINE"}};
  std::set<std::string> importable;
  std::set<std::string> remote_datasets{"backup"};
  std::uint64_t avail = std::uint64_t{100} << 30;
  std::string remote_snapshots;  ///< zfs get listing of the target
  std::string allow_output;
  bool sudo_ok = true;
  bool disk_present = true;
  std::string disk_state = "standby";
  std::optional<Result<std::optional<AgentStatus>>> agent_answer;  ///< unset: the job has no agent
  // local
  std::set<std::string> local_datasets{"tank/data"};
  bool send_nvp = true;
  std::uint64_t send_size = std::uint64_t{5} << 30;
  std::uint64_t used = std::uint64_t{7} << 30;
  // what happened
  int wakes = 0;
  int power_offs = 0;
  std::vector<std::string> connected_known_hosts;
  FakeCommandRunner local_runner;
  FakeCommandRunner remote_runner;

  FakeWorld() {
    local_runner.fallback([this](const std::vector<std::string>& argv) { return answer_local(argv); });
    remote_runner.fallback([this](const std::vector<std::string>& argv) { return answer_remote(argv); });
  }

  ProbeResult probe(const Job&) override {
    ProbeResult p;
    p.state = up ? ProbeState::up : ProbeState::refused;
    if (up) p.banner = "SSH-2.0-Fake";
    return p;
  }
  Result<int> wake(const Job&) override {
    ++wakes;
    return 3;
  }
  Result<WaitOutcome> wait_up(const Job&, const std::function<void()>&, const std::atomic<bool>*) override {
    if (!wakes_up) return make_error(ExitCode::unavailable, "host box:22 did not answer with an SSH banner within 2s");
    up = true;
    WaitOutcome w;
    w.probes = 4;
    return w;
  }
  Result<std::unique_ptr<CommandRunner>> connect(const Job& job) override {
    connected_known_hosts.push_back(job.known_hosts);
    if (!login_ok) return make_error("SSH root@box:22: public key authentication failed (key rejected)");
    return std::unique_ptr<CommandRunner>(std::make_unique<ForwardingRunner>(remote_runner));
  }
  CommandRunner& local() override { return local_runner; }
  Result<ProcessResult> run_syncoid(const std::vector<std::string>&, std::chrono::seconds, const LineCallback&,
                                    const LineCallback&, const std::atomic<bool>*) override {
    ADD_FAILURE() << "check must never run syncoid";
    return ProcessResult{};
  }
  Result<void> power_off(const Job&) override {
    ++power_offs;
    up = false;
    return ok();
  }
  std::vector<NotificationResult> notify(const Job&, const RunRecord&) override {
    ADD_FAILURE() << "check must never notify";
    return {};
  }
  std::vector<NotificationResult> notify_start(const Job&) override {
    ADD_FAILURE() << "check must never notify";
    return {};
  }
  Clock& clock() override { return clock_; }
  Result<std::optional<AgentStatus>> agent_status(const Job&) override {
    if (!agent_answer) return std::optional<AgentStatus>();
    return *agent_answer;
  }

 private:
  Result<CommandOutput> answer_local(const std::vector<std::string>& argv) {
    const std::string cmd = join(argv, " ");
    const std::string& last = argv.back();
    if (cmd.starts_with("zfs list -H -o name ")) {
      return local_datasets.contains(last) ? out(last + "\n")
                                           : fail(1, "cannot open '" + last + "': dataset does not exist\n");
    }
    if (cmd.starts_with("zfs list -H -o name,userrefs -t snapshot -d 1 ")) {  // hold_check
      return out(last + "@s1\t0\n" + last + "@s2\t1\n");
    }
    if (cmd == "zfs holds -H " + last) return out(last + "\thozo:nightly\tWed Dec  1 20:00 2026\n");
    if (cmd.starts_with("zfs get -H -p -o name,property,value")) {
      return out(last + "\tguid\t1\n" + last + "\tcreatetxg\t1\n" + last + "@s1\tguid\t111\n" + last +
                 "@s1\tcreatetxg\t5\n" + last + "@s2\tguid\t222\n" + last + "@s2\tcreatetxg\t9\n");
    }
    if (cmd.starts_with("zfs send -n -v -P")) {
      if (!send_nvp) return fail(2, "invalid option 'n'\nusage:\n");
      return out(fmt::format("full\t{}\t{}\nsize\t{}\n", last, send_size, send_size));
    }
    if (cmd.starts_with("zfs get -H -p -o value used ")) return out(fmt::format("{}\n", used));
    if (cmd.starts_with("zfs get -H -p -o value usedbychildren ")) return out("0\n");
    return make_error("unexpected local command: {}", cmd);
  }

  Result<CommandOutput> answer_remote(const std::vector<std::string>& argv) {
    const std::string cmd = join(argv, " ");
    const std::string& last = argv.back();
    if (cmd == "zfs version") return remote_zfs ? out("zfs-2.1.11-1\nzfs-kmod-2.1.11-1\n") : fail(127, "sh: 1: zfs: not found\n");
    if (cmd == "test -b /dev/sdb") return disk_present ? out("") : fail(1, "");
    if (cmd == "hdparm -C /dev/sdb") return out("\n/dev/sdb:\n drive state is:  " + disk_state + "\n");
    if (cmd.starts_with("zpool list -H -o name,health ")) {
      return pools.contains(last) ? out(last + "\t" + pools[last] + "\n") : fail(1, "cannot open '" + last + "': no such pool\n");
    }
    if (cmd.starts_with("zpool list -H -o name ")) {
      return pools.contains(last) ? out(last + "\n") : fail(1, "cannot open '" + last + "': no such pool\n");
    }
    if (cmd == "zpool import") {
      if (importable.empty()) return fail(1, "no pools available to import\n");
      std::string text;
      for (const auto& p : importable) text += "   pool: " + p + "\n     id: 42\n  state: ONLINE\n";
      return out(text);
    }
    if (cmd.starts_with("zfs list -H -o name ")) {
      return remote_datasets.contains(last) ? out(last + "\n")
                                            : fail(1, "cannot open '" + last + "': dataset does not exist\n");
    }
    if (cmd.starts_with("zfs get -H -p -o value available ")) return out(fmt::format("{}\n", avail));
    if (cmd.starts_with("zfs get -H -p -o name,property,value")) return out(remote_snapshots);
    if (cmd.starts_with("zfs allow ")) return out(allow_output);
    if (cmd == "id -Gn") return out("backup staff\n");
    if (cmd == "sudo -n true") return sudo_ok ? out("") : fail(1, "sudo: a password is required\n");
    return make_error("unexpected remote command: {}", cmd);
  }

  FakeClock clock_;
};

Job check_job() {
  Job job;
  job.name = "nightly";
  job.target_host = "box";
  job.mac_address = "aa:bb:cc:dd:ee:ff";
  job.datasets.push_back(DatasetPair{"tank/data", "backup/data", true});
  return job;
}

HostKeyInfo key(HostKeyState state) {
  HostKeyInfo info;
  info.host_entry = "box";
  info.key_type = "ssh-ed25519";
  info.fingerprint = "SHA256:abc";
  info.state = state;
  if (state == HostKeyState::changed) info.recorded_fingerprints = {"SHA256:old"};
  return info;
}

struct Harness {
  FakeWorld world;
  HostKeyState key_state = HostKeyState::known;
  std::set<std::string> programs{"syncoid", "zfs"};
  test::TempDir dir{"hozo-check"};
  CheckEnv env{world, {}, {}, {}, {}, {}, "/etc/hozo/hozo.yaml"};

  Harness() {
    env.fetch_host_key = [this](const SshOptions&) -> Result<HostKeyInfo> { return key(key_state); };
    env.interfaces = [] { return lan(); };
    env.find_program = [this](std::string_view name) -> std::optional<std::filesystem::path> {
      if (!programs.contains(std::string(name))) return std::nullopt;
      return std::filesystem::path("/usr/sbin") / std::string(name);
    };
    env.probe_relay = [](const std::string&, int) {
      ProbeResult p;
      p.state = ProbeState::up;
      p.banner = "SSH-2.0-Relay";
      return p;
    };
    env.state_dir = dir.path();
  }

  CheckReport run(const Job& job, bool wake = false) {
    CheckOptions options;
    options.wake = wake;
    return run_checks(job, env, options);
  }
};

const CheckRow* find_row(const CheckReport& report, std::string_view name) {
  for (const auto& r : report.rows) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

CheckStatus status_of(const CheckReport& report, std::string_view name) {
  const auto* r = find_row(report, name);
  EXPECT_NE(r, nullptr) << "no row " << name << " in\n" << format_report(report);
  return r == nullptr ? CheckStatus::skipped : r->status;
}

/// Only reading commands ever ran (locally: zfs list/get, zfs send -n; remotely: listings).
void expect_read_only(const FakeWorld& w) {
  for (const auto& c : w.local_runner.calls) {
    EXPECT_TRUE(c.starts_with("zfs list ") || c.starts_with("zfs get ") || c.starts_with("zfs send -n ") ||
                c.starts_with("zfs holds "))
        << "local command " << c;
  }
  for (const auto& c : w.remote_runner.calls) {
    // `zpool import [-d DIR]...` only lists (a real import ends with the pool name, not a path).
    const bool import_listing =
        c == "zpool import" || (c.starts_with("zpool import -d ") && c.rfind(" /") == c.rfind(' '));
    EXPECT_TRUE(c == "zfs version" || c.starts_with("zfs list ") || c.starts_with("zfs get ") ||
                c.starts_with("zfs allow ") || c.starts_with("zpool list ") || import_listing || c == "id -Gn" ||
                c == "sudo -n true" || c.starts_with("test -b ") || c.starts_with("hdparm -C "))
        << "remote command " << c;
  }
}

TEST(CheckRun, BoxUpEverythingOk) {
  Harness h;
  h.world.up = true;
  const auto report = h.run(check_job());
  EXPECT_TRUE(report.ok()) << format_report(report);
  for (const auto& r : report.rows) EXPECT_EQ(r.status, CheckStatus::ok) << r.name << ": " << r.detail;
  EXPECT_EQ(h.world.wakes, 0);
  EXPECT_EQ(h.world.power_offs, 0);
  EXPECT_EQ(find_row(report, "power off"), nullptr);
  const auto* space = find_row(report, "space backup/data");
  ASSERT_NE(space, nullptr);
  EXPECT_NE(space->detail.find("5.0 GiB to send"), std::string::npos) << space->detail;
  EXPECT_NE(space->detail.find("100.0 GiB available on backup"), std::string::npos) << space->detail;
  const auto* holds = find_row(report, "holds tank/data");
  ASSERT_NE(holds, nullptr);
  EXPECT_EQ(holds->detail, "tank/data@s2 (hozo:nightly)");
  EXPECT_TRUE(std::find(h.world.local_runner.calls.begin(), h.world.local_runner.calls.end(),
                        "zfs send -n -v -P -R tank/data@s2") != h.world.local_runner.calls.end());
  expect_read_only(h.world);
}

TEST(CheckRun, BoxOffWithoutWakeWarnsAndSkipsTheRemoteRows) {
  Harness h;
  const auto report = h.run(check_job());
  EXPECT_TRUE(report.ok()) << "a box that is off is not a failure by itself";
  EXPECT_EQ(status_of(report, "host"), CheckStatus::warn);
  EXPECT_NE(find_row(report, "host")->fix.find("--wake"), std::string::npos);
  for (const char* name : {"host key", "ssh login", "zfs (box)", "space"}) {
    EXPECT_EQ(status_of(report, name), CheckStatus::skipped);
    EXPECT_EQ(find_row(report, name)->detail, "box is off; use --wake");
  }
  EXPECT_EQ(h.world.wakes, 0);
  EXPECT_TRUE(h.world.remote_runner.calls.empty());
}

TEST(CheckRun, WakeChecksAndPowersOffAgain) {
  Harness h;
  const auto report = h.run(check_job(), /*wake=*/true);
  EXPECT_TRUE(report.ok()) << format_report(report);
  EXPECT_TRUE(report.woke);
  EXPECT_TRUE(report.powered_off);
  EXPECT_EQ(h.world.wakes, 1);
  EXPECT_EQ(h.world.power_offs, 1);
  EXPECT_EQ(status_of(report, "power off"), CheckStatus::ok);
  EXPECT_FALSE(std::filesystem::exists(h.dir.path() / "hosts" / "box.woken")) << "marker cleared";
  EXPECT_FALSE(HostLease::in_use_by_others(h.dir.path(), "box").value()) << "lease released";
}

TEST(CheckRun, WakeLeavesTheBoxOnWhileAJobUsesIt) {
  Harness h;
  auto job_lease = HostLease::acquire(h.dir.path(), "box", HostSharing::concurrent, Millis(1000));
  ASSERT_TRUE(job_lease);
  const auto report = h.run(check_job(), /*wake=*/true);
  EXPECT_TRUE(report.woke);
  EXPECT_EQ(h.world.power_offs, 0);
  EXPECT_EQ(status_of(report, "power off"), CheckStatus::ok);
  EXPECT_NE(find_row(report, "power off")->detail.find("another job"), std::string::npos);
  // The job that stays is now responsible: the woken marker tells it hozo woke the box.
  EXPECT_TRUE(job_lease->woken_by_hozo().value());
}

TEST(CheckRun, WakeWhenTheBoxIsAlreadyUpDoesNothingToIt) {
  Harness h;
  h.world.up = true;
  const auto report = h.run(check_job(), /*wake=*/true);
  EXPECT_FALSE(report.woke);
  EXPECT_EQ(h.world.wakes, 0);
  EXPECT_EQ(h.world.power_offs, 0);
  EXPECT_EQ(find_row(report, "power off"), nullptr);
}

TEST(CheckRun, BoxThatNeverWakesFails) {
  Harness h;
  h.world.wakes_up = false;
  const auto report = h.run(check_job(), /*wake=*/true);
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(status_of(report, "host"), CheckStatus::fail);
  EXPECT_EQ(status_of(report, "ssh login"), CheckStatus::skipped);
  EXPECT_EQ(status_of(report, "power off"), CheckStatus::warn);
  EXPECT_EQ(h.world.power_offs, 0);
}

TEST(CheckRun, NoMacAddressCannotWake) {
  Harness h;
  Job job = check_job();
  job.mac_address.clear();
  const auto report = h.run(job, /*wake=*/true);
  EXPECT_EQ(status_of(report, "wol settings"), CheckStatus::warn);
  EXPECT_EQ(status_of(report, "host"), CheckStatus::fail);
  EXPECT_EQ(h.world.wakes, 0);
}

TEST(CheckRun, RelayIsProbedInsteadOfTheBroadcast) {
  Harness h;
  h.world.up = true;
  Job job = check_job();
  job.wol_broadcast = "203.0.113.255";  // not local; fine through a relay
  job.wol_relay = WolRelay{};
  job.wol_relay->host = "relay";
  auto report = h.run(job);
  EXPECT_EQ(find_row(report, "wol settings"), nullptr);
  EXPECT_EQ(status_of(report, "wol relay"), CheckStatus::ok);
  h.env.probe_relay = [](const std::string&, int) { return ProbeResult{}; };
  report = h.run(job);
  EXPECT_EQ(status_of(report, "wol relay"), CheckStatus::fail);
}

TEST(CheckRun, UnknownHostKeyFailsWithTheHostkeyFix) {
  Harness h;
  h.world.up = true;
  h.key_state = HostKeyState::unknown;
  const auto report = h.run(check_job());
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(status_of(report, "host key"), CheckStatus::fail);
  EXPECT_NE(find_row(report, "host key")->fix.find("hozo hostkey nightly --accept"), std::string::npos);
  EXPECT_EQ(status_of(report, "ssh login"), CheckStatus::skipped);
  EXPECT_TRUE(h.world.connected_known_hosts.empty()) << "no login to an untrusted host";
}

TEST(CheckRun, UnknownHostKeyWithAcceptNewWarnsAndLogsInAgainstAScratchCopy) {
  Harness h;
  h.world.up = true;
  h.key_state = HostKeyState::unknown;
  Job job = check_job();
  job.host_key_policy = HostKeyPolicy::accept_new;
  job.known_hosts = h.dir.write("known_hosts", "").string();
  const auto report = h.run(job);
  EXPECT_TRUE(report.ok()) << format_report(report);
  EXPECT_EQ(status_of(report, "host key"), CheckStatus::warn);
  EXPECT_EQ(status_of(report, "ssh login"), CheckStatus::ok);
  ASSERT_EQ(h.world.connected_known_hosts.size(), 1U);
  EXPECT_NE(h.world.connected_known_hosts[0], job.known_hosts);
  EXPECT_FALSE(std::filesystem::exists(h.world.connected_known_hosts[0])) << "scratch copy removed";
}

TEST(CheckRun, ChangedHostKeyFails) {
  Harness h;
  h.world.up = true;
  h.key_state = HostKeyState::changed;
  const auto report = h.run(check_job());
  EXPECT_EQ(status_of(report, "host key"), CheckStatus::fail);
  EXPECT_NE(find_row(report, "host key")->detail.find("SHA256:old"), std::string::npos);
  EXPECT_NE(find_row(report, "host key")->fix.find("ssh-keygen -R"), std::string::npos);
}

TEST(CheckRun, LoginFailureSkipsTheRemoteRows) {
  Harness h;
  h.world.up = true;
  h.world.login_ok = false;
  const auto report = h.run(check_job());
  EXPECT_EQ(status_of(report, "ssh login"), CheckStatus::fail);
  EXPECT_NE(find_row(report, "ssh login")->fix.find("authorized_keys"), std::string::npos);
  EXPECT_EQ(status_of(report, "zfs (box)"), CheckStatus::skipped);
  EXPECT_EQ(find_row(report, "zfs (box)")->detail, "no SSH login");
}

TEST(CheckRun, NoZfsOnTheBox) {
  Harness h;
  h.world.up = true;
  h.world.remote_zfs = false;
  const auto report = h.run(check_job());
  EXPECT_EQ(status_of(report, "zfs (box)"), CheckStatus::fail);
  EXPECT_EQ(status_of(report, "pools"), CheckStatus::skipped);
}

TEST(CheckRun, LocalProblems) {
  Harness h;
  h.world.up = true;
  h.programs = {"zfs"};
  h.world.local_datasets.clear();
  const auto report = h.run(check_job());
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(status_of(report, "syncoid"), CheckStatus::fail);
  EXPECT_NE(find_row(report, "syncoid")->fix.find("sanoid"), std::string::npos);
  EXPECT_EQ(status_of(report, "source tank/data"), CheckStatus::fail);
  EXPECT_EQ(status_of(report, "space backup/data"), CheckStatus::skipped);
}

TEST(CheckRun, NoLocalZfsSkipsTheSourceRows) {
  Harness h;
  h.programs = {"syncoid"};
  const auto report = h.run(check_job());
  EXPECT_EQ(status_of(report, "zfs (local)"), CheckStatus::fail);
  EXPECT_EQ(status_of(report, "source tank/data"), CheckStatus::skipped);
  EXPECT_TRUE(h.world.local_runner.calls.empty());
}

TEST(CheckRun, PoolStates) {
  Harness h;
  h.world.up = true;
  h.world.pools.clear();
  auto report = h.run(check_job());
  EXPECT_EQ(status_of(report, "pool backup"), CheckStatus::fail) << "neither imported nor importable";
  EXPECT_EQ(status_of(report, "target backup/data"), CheckStatus::skipped);

  h.world.importable = {"backup"};
  report = h.run(check_job());
  EXPECT_EQ(status_of(report, "pool backup"), CheckStatus::warn) << "importable: the run imports it";

  Job no_import = check_job();
  no_import.target_pool_import = false;
  report = h.run(no_import);
  EXPECT_EQ(status_of(report, "pool backup"), CheckStatus::fail);
  EXPECT_NE(find_row(report, "pool backup")->fix.find("zpool import backup"), std::string::npos);

  h.world.pools = {{"backup", "DEGRADED"}};
  report = h.run(check_job());
  EXPECT_EQ(status_of(report, "pool backup"), CheckStatus::warn);
  EXPECT_EQ(status_of(report, "target backup/data"), CheckStatus::ok);

  h.world.pools = {{"backup", "FAULTED"}};
  report = h.run(check_job());
  EXPECT_EQ(status_of(report, "pool backup"), CheckStatus::fail);
  expect_read_only(h.world);
}

TEST(CheckRun, TargetParentMissingFails) {
  Harness h;
  h.world.up = true;
  Job job = check_job();
  job.datasets[0].target = "backup/hosts/data";
  const auto report = h.run(job);
  EXPECT_EQ(status_of(report, "target backup/hosts/data"), CheckStatus::fail);
  EXPECT_NE(find_row(report, "target backup/hosts/data")->fix.find("zfs create -p backup/hosts"), std::string::npos);
}

TEST(CheckRun, SpaceTooSmallFails) {
  Harness h;
  h.world.up = true;
  h.world.avail = std::uint64_t{1} << 30;
  const auto report = h.run(check_job());
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(status_of(report, "space backup/data"), CheckStatus::fail);
}

TEST(CheckRun, SpaceFallsBackToUsedWithoutSendDryRun) {
  Harness h;
  h.world.up = true;
  h.world.send_nvp = false;
  const auto report = h.run(check_job());
  EXPECT_EQ(status_of(report, "space backup/data"), CheckStatus::ok);
  EXPECT_NE(find_row(report, "space backup/data")->detail.find("7.0 GiB"), std::string::npos);
  EXPECT_NE(find_row(report, "space backup/data")->detail.find("used space"), std::string::npos);
}

TEST(CheckRun, IncrementalEstimateFromTheCommonSnapshot) {
  Harness h;
  h.world.up = true;
  h.world.remote_datasets.insert("backup/data");
  h.world.remote_snapshots = "backup/data@s1\tguid\t111\nbackup/data@s1\tcreatetxg\t3\n";
  auto report = h.run(check_job());
  EXPECT_EQ(status_of(report, "target backup/data"), CheckStatus::ok);
  EXPECT_NE(find_row(report, "target backup/data")->detail.find("incremental"), std::string::npos);
  EXPECT_TRUE(std::find(h.world.local_runner.calls.begin(), h.world.local_runner.calls.end(),
                        "zfs send -n -v -P -R -I @s1 tank/data@s2") != h.world.local_runner.calls.end());

  h.world.remote_snapshots = "backup/data@s2\tguid\t222\nbackup/data@s2\tcreatetxg\t4\n";
  report = h.run(check_job());
  EXPECT_NE(find_row(report, "space backup/data")->detail.find("already on the target"), std::string::npos);
}

TEST(CheckRun, NonRootWithDelegation) {
  Harness h;
  h.world.up = true;
  Job job = check_job();
  job.ssh_user = "backup";
  job.no_privilege_elevation = true;
  h.world.allow_output =
      "---- Permissions on backup ----\nLocal+Descendent permissions:\n\tuser backup create,mount\n";
  auto report = h.run(job);
  EXPECT_EQ(status_of(report, "permissions backup/data"), CheckStatus::fail);
  EXPECT_NE(find_row(report, "permissions backup/data")->detail.find("receive"), std::string::npos);
  EXPECT_NE(find_row(report, "permissions backup/data")->fix.find("zfs allow -u backup"), std::string::npos);

  h.world.allow_output =
      "---- Permissions on backup ----\nLocal+Descendent permissions:\n\tgroup staff create,mount,receive\n";
  report = h.run(job);
  EXPECT_EQ(status_of(report, "permissions backup/data"), CheckStatus::warn) << "no rollback/destroy";

  h.world.allow_output += "\tuser backup destroy,rollback\n";
  report = h.run(job);
  EXPECT_EQ(status_of(report, "permissions backup/data"), CheckStatus::ok);
  expect_read_only(h.world);
}

TEST(CheckRun, NonRootWithSudo) {
  Harness h;
  h.world.up = true;
  Job job = check_job();
  job.ssh_user = "backup";
  EXPECT_EQ(status_of(h.run(job), "permissions"), CheckStatus::ok);
  h.world.sudo_ok = false;
  EXPECT_EQ(status_of(h.run(job), "permissions"), CheckStatus::fail);
}

TEST(CheckRun, CancelledBeforeTheRemoteChecks) {
  Harness h;
  std::atomic<bool> cancel{true};
  CheckOptions options;
  options.cancel = &cancel;
  const auto report = run_checks(check_job(), h.env, options);
  EXPECT_TRUE(report.interrupted);
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(status_of(report, "ssh login"), CheckStatus::skipped);
}

TEST(CheckRun, BackupDiskIsLookedAtNotSpunUp) {
  Harness h;
  h.world.up = true;
  Job job = check_job();
  job.backup_device = "/dev/sdb";
  auto report = h.run(job);
  EXPECT_EQ(status_of(report, "backup disk"), CheckStatus::ok);
  EXPECT_NE(find_row(report, "backup disk")->detail.find("standby via hdparm over SSH (root@box:22) (a run spins it up first)"),
            std::string::npos)
      << find_row(report, "backup disk")->detail;
  expect_read_only(h.world);  // no dd read
  h.world.disk_present = false;
  report = h.run(job);
  EXPECT_EQ(status_of(report, "backup disk"), CheckStatus::fail);
  EXPECT_FALSE(report.ok());
  EXPECT_NE(find_row(report, "backup disk")->fix.find("/dev/disk/by-id"), std::string::npos);
}

TEST(CheckRun, AgentAnswersOrIsAWarning) {
  Harness h;
  h.world.up = true;
  Job job = check_job();
  job.agent = AgentSettings{"http://192.0.2.10:9999", Secret("t0ken")};
  AgentStatus st;
  st.version = "0.1.0";
  st.pools.push_back(AgentPool{"backup", "ONLINE", 0, 0, 0, "", "", ""});
  h.world.agent_answer = Result<std::optional<AgentStatus>>(std::optional<AgentStatus>(st));
  auto report = h.run(job);
  EXPECT_EQ(status_of(report, "backupd"), CheckStatus::ok);
  EXPECT_NE(find_row(report, "backupd")->detail.find("(0.1.0), 1 pool(s)"), std::string::npos);
  h.world.agent_answer = Result<std::optional<AgentStatus>>(make_error("agent http://192.0.2.10:9999 /status: token rejected (401)"));
  report = h.run(job);
  EXPECT_EQ(status_of(report, "backupd"), CheckStatus::warn);
  EXPECT_TRUE(report.ok()) << format_report(report);  // hozo falls back to SSH: not a failure
}

TEST(CheckRun, NoLoginSkipsTheAgentAndDiskRows) {
  Harness h;
  h.world.up = true;
  h.world.login_ok = false;
  Job job = check_job();
  job.backup_device = "/dev/sdb";
  job.agent = AgentSettings{"http://192.0.2.10:9999", Secret("t0ken")};
  const auto report = h.run(job);
  EXPECT_EQ(status_of(report, "backupd"), CheckStatus::skipped);
  EXPECT_EQ(status_of(report, "backup disk"), CheckStatus::skipped);
}

TEST(CheckRun, JobsSharingABoxWakeItOnceAndPowerItOffOnce) {
  Harness h;
  Job a = check_job();
  Job b = check_job();
  b.name = "weekly";
  Job other = check_job();
  other.name = "elsewhere";
  other.target_host = "box2";
  CheckOptions options;
  options.wake = true;
  const auto reports = run_checks_for_jobs({&a, &b, &other}, h.env, options);
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(h.world.wakes, 2);       // box once, box2 once
  EXPECT_EQ(h.world.power_offs, 2);  // after "weekly" for box, after "elsewhere" for box2
  EXPECT_TRUE(reports[0].woke);
  EXPECT_FALSE(reports[0].powered_off);
  EXPECT_NE(find_row(reports[0], "power off")->detail.find("another job uses the box"), std::string::npos);
  EXPECT_FALSE(reports[1].woke);  // already up: woken by the first check
  EXPECT_TRUE(reports[1].powered_off);
  EXPECT_EQ(find_row(reports[1], "power off")->status, CheckStatus::ok);
  EXPECT_TRUE(reports[2].powered_off);
  for (const auto& r : reports) EXPECT_TRUE(r.ok()) << format_report(r);
}

TEST(CheckRun, InterruptedGroupStillPowersOffTheBoxItWoke) {
  Harness h;
  Job a = check_job();
  Job b = check_job();
  b.name = "weekly";
  std::atomic<bool> cancel{false};
  CheckOptions options;
  options.wake = true;
  options.cancel = &cancel;
  h.env.fetch_host_key = [&](const SshOptions&) -> Result<HostKeyInfo> {
    cancel.store(true);  // Ctrl-C after the first job's check woke the box
    return key(HostKeyState::known);
  };
  const auto reports = run_checks_for_jobs({&a, &b}, h.env, options);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports[0].woke);
  EXPECT_EQ(h.world.wakes, 1);
  EXPECT_EQ(h.world.power_offs, 1);  // powered off all the same, by the group
  EXPECT_FALSE(h.world.up);
  EXPECT_TRUE(reports[0].powered_off);
}

TEST(CheckRun, SharedBoxThatWasAlreadyUpIsLeftOn) {
  Harness h;
  h.world.up = true;
  Job a = check_job();
  Job b = check_job();
  b.name = "weekly";
  // A stale marker (a crashed run) must not make check power the box off.
  auto stale = HostLease::acquire(h.dir.path(), "box", HostSharing::concurrent, Millis(1000)).value();
  ASSERT_TRUE(stale.mark_woken("crashed-run").ok());
  stale.release();
  CheckOptions options;
  options.wake = true;
  const auto reports = run_checks_for_jobs({&a, &b}, h.env, options);
  EXPECT_EQ(h.world.wakes, 0);
  EXPECT_EQ(h.world.power_offs, 0);
  EXPECT_EQ(find_row(reports[1], "power off"), nullptr);
}

TEST(CheckOutput, TableAndJson) {
  Harness h;
  h.world.up = true;
  h.key_state = HostKeyState::unknown;
  const auto report = h.run(check_job());
  const auto text = format_report(report);
  EXPECT_NE(text.find("  ✓ config"), std::string::npos) << text;
  EXPECT_NE(text.find("  ✗ host key"), std::string::npos) << text;
  EXPECT_NE(text.find("  - ssh login"), std::string::npos) << text;
  EXPECT_NE(text.find("fix: run `hozo hostkey nightly --accept`"), std::string::npos) << text;
  EXPECT_NE(text.find("nightly: NOT OK (1 failed"), std::string::npos) << text;
  const auto j = to_json(report);
  EXPECT_EQ(j["job"], "nightly");
  EXPECT_EQ(j["ok"], false);
  ASSERT_TRUE(j["rows"].is_array());
  EXPECT_EQ(j["rows"].size(), report.rows.size());
  EXPECT_EQ(j["rows"][0]["status"], "ok");
  bool found = false;
  for (const auto& r : j["rows"]) {
    if (r["name"] == "host key") {
      found = true;
      EXPECT_EQ(r["status"], "fail");
      EXPECT_FALSE(r["fix"].get<std::string>().empty());
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace
