// hozo init: the rendered config passes the validator, answers map to options, the key is made
// once and never replaced, the config is never replaced without --force, and the online part
// (wake, host key, login wait, check, power-off) with fakes.
#include "hozo/init.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <deque>

#include "hozo/util/fs.hpp"
#include "test_support.hpp"

namespace hozo {
namespace {

using test::TempDir;

InitAnswers sample() {
  InitAnswers a;
  a.source = "tank/data";
  a.target_host = "192.0.2.10";
  a.mac = "02:00:5e:10:00:01";
  a.ssh_key = "/etc/hozo/id_ed25519";
  return a;
}

mode_t mode_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

TEST(InitRender, ParsesAsTheAnswersSay) {
  auto a = sample();
  a.name = "offsite";
  a.recursive = false;
  a.target_dataset = "vault/data";
  a.ssh_port = 2222;
  a.known_hosts = "/var/lib/hozo/kh";
  a.schedule = "weekly Sunday 03:00";
  const auto text = render_init_config(a, "2026-12-01T00:00:00Z");
  EXPECT_NE(text.find("# hozo configuration for one job"), std::string::npos);
  auto config = parse_config(text, "init.yaml");
  ASSERT_TRUE(config) << config.error().message << "\n" << text;
  ASSERT_EQ(config->jobs.size(), 1U);
  const Job& job = config->jobs[0];
  EXPECT_EQ(job.name, "offsite");
  ASSERT_EQ(job.datasets.size(), 1U);
  EXPECT_EQ(job.datasets[0].source, "tank/data");
  EXPECT_EQ(job.datasets[0].target, "vault/data");
  EXPECT_FALSE(job.datasets[0].recursive);
  EXPECT_EQ(job.target_host, "192.0.2.10");
  EXPECT_EQ(job.mac_address, "02:00:5e:10:00:01");
  EXPECT_EQ(job.ssh_port, 2222);
  EXPECT_EQ(job.ssh_key, "/etc/hozo/id_ed25519");
  EXPECT_EQ(job.known_hosts, "/var/lib/hozo/kh");
  EXPECT_EQ(job.schedule, "weekly Sunday 03:00");
}

TEST(InitRender, NoWolAndDefaultTarget) {
  auto a = sample();
  a.wol = false;
  a.mac.clear();
  a.schedule.clear();
  auto config = parse_config(render_init_config(a, "now"), "init.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_TRUE(config->jobs[0].mac_address.empty());
  EXPECT_EQ(config->jobs[0].datasets[0].target, "backup/data");
  EXPECT_TRUE(config->jobs[0].schedule.empty());
}

TEST(InitRender, QuotesWhatYamlWouldMisread) {
  auto a = sample();
  a.ssh_user = "a\"b: #c";
  const auto text = render_init_config(a, "now");
  std::vector<ConfigIssue> issues;
  auto config = parse_config(text, "init.yaml", &issues);
  // Whatever the validator thinks of such a user name, YAML must read it back verbatim.
  if (config) {
    EXPECT_EQ(config->jobs[0].ssh_user, "a\"b: #c");
  }
  for (const auto& issue : issues) EXPECT_EQ(issue.path.rfind("jobs[0].ssh_user", 0), 0U) << issue.to_string();
}

TEST(InitDefaults, TargetAndKey) {
  EXPECT_EQ(default_target_dataset("tank/data"), "backup/data");
  EXPECT_EQ(default_target_dataset("tank"), "backup/tank");
  EXPECT_EQ(default_target_dataset("tank/a/b"), "backup/b");
  EXPECT_EQ(default_key_path("/etc/hozo/hozo.yaml"), std::filesystem::path("/etc/hozo/id_ed25519"));
}

TEST(InitValidate, IssuesByOption) {
  EXPECT_TRUE(validate_init_answers(sample()).empty());
  auto a = sample();
  a.mac = "zz:zz";
  a.name = "bad name!";
  a.target_host = "192.0.2.300";  // may or may not be refused, depending on the validator's rules
  const auto issues = validate_init_answers(a);
  ASSERT_TRUE(issues.contains("mac")) << "no mac issue";
  EXPECT_NE(issues.at("mac").find("jobs[0].mac_address"), std::string::npos);
  EXPECT_TRUE(issues.contains("name"));
  EXPECT_FALSE(issues.contains(""));
  auto missing = InitAnswers{};
  const auto required = validate_init_answers(missing);
  EXPECT_TRUE(required.contains("source"));
  EXPECT_TRUE(required.contains("target-host"));
  EXPECT_TRUE(required.contains("mac"));
  missing.wol = false;
  EXPECT_FALSE(validate_init_answers(missing).contains("mac"));
}

TEST(InitValidate, FieldForIssue) {
  EXPECT_EQ(init_field_for_issue("jobs[0].mac_address"), "mac");
  EXPECT_EQ(init_field_for_issue("jobs[0].source"), "source");
  EXPECT_EQ(init_field_for_issue("jobs[0].datasets[0].source"), "source");
  EXPECT_EQ(init_field_for_issue("jobs[0].ssh_port"), "ssh-port");
  EXPECT_EQ(init_field_for_issue("jobs[0].syncoid.path"), "");
  EXPECT_EQ(init_field_for_issue("settings.history"), "");
  EXPECT_EQ(init_field_for_issue("jobs[0]"), "");
}

TEST(InitAuthorizedKeys, FromAndRestrict) {
  EXPECT_EQ(authorized_keys_line("ssh-ed25519 AAAA c", "192.0.2.1"), "from=\"192.0.2.1\",restrict ssh-ed25519 AAAA c");
  EXPECT_EQ(authorized_keys_line("ssh-ed25519 AAAA c", ""), "restrict ssh-ed25519 AAAA c");
}

TEST(InitAddress, LoopbackRoute) {
  auto addr = local_address_towards("127.0.0.1", 22);
  ASSERT_TRUE(addr) << addr.error().message;
  EXPECT_EQ(*addr, "127.0.0.1");  // (no name lookups here: tests send no DNS queries)
}

TEST(InitKey, GeneratedOnceNeverReplaced) {
  TempDir dir;
  const auto path = dir.path() / "keys" / "id_ed25519";
  auto first = ensure_identity_key(path, "hozo-test@here");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->public_line.rfind("ssh-ed25519 AAAA", 0), 0U) << first->public_line;
  EXPECT_NE(first->public_line.find(" hozo-test@here"), std::string::npos);
  EXPECT_EQ(first->fingerprint.rfind("SHA256:", 0), 0U);
  EXPECT_EQ(mode_of(path), 0600U);
  EXPECT_EQ(mode_of(path.string() + ".pub"), 0644U);
  EXPECT_EQ(mode_of(path.parent_path()), 0700U);
  const auto before = read_file(path);
  ASSERT_TRUE(before);
  EXPECT_NE(before->find("BEGIN OPENSSH PRIVATE KEY"), std::string::npos);

  auto again = ensure_identity_key(path, "other comment");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->fingerprint, first->fingerprint);
  EXPECT_EQ(again->public_line, first->public_line);  // the comment it was made with
  EXPECT_EQ(*read_file(path), *before);
}

TEST(InitKey, RefusesWhatItCannotUse) {
  TempDir dir;
  const auto junk = dir.write("junk", "not a key\n");
  ::chmod(junk.c_str(), 0600);
  auto r = ensure_identity_key(junk, "c");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("never overwrites"), std::string::npos) << r.error().message;
  EXPECT_EQ(*read_file(junk), "not a key\n");

  auto made = ensure_identity_key(dir.path() / "k", "c");
  ASSERT_TRUE(made);
  ::chmod((dir.path() / "k").c_str(), 0644);
  auto open = ensure_identity_key(dir.path() / "k", "c");
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().message.find("chmod 600"), std::string::npos) << open.error().message;

  dir.write("lonely.pub", "ssh-ed25519 AAAA x\n");
  auto lonely = ensure_identity_key(dir.path() / "lonely", "c");
  ASSERT_FALSE(lonely);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "lonely"));

  std::filesystem::create_directory(dir.path() / "adir");
  EXPECT_FALSE(ensure_identity_key(dir.path() / "adir", "c"));
}

TEST(InitConfigFile, ModeAndNoOverwrite) {
  TempDir dir;
  const auto path = dir.path() / "etc" / "hozo.yaml";
  ASSERT_TRUE(write_init_config(path, "one\n", Overwrite::no));
  EXPECT_EQ(mode_of(path), 0600U);
  auto refused = write_init_config(path, "two\n", Overwrite::no);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ExitCode::usage);
  EXPECT_NE(refused.error().message.find("--force"), std::string::npos);
  EXPECT_EQ(*read_file(path), "one\n");
  ASSERT_TRUE(write_init_config(path, "two\n", Overwrite::yes));
  EXPECT_EQ(*read_file(path), "two\n");
  EXPECT_EQ(*read_file(path.string() + ".bak"), "one\n");
  EXPECT_EQ(mode_of(path.string() + ".bak"), 0600U);
}

TEST(InitFiles, WriteFileNewNeverReplaces) {
  TempDir dir;
  const auto path = dir.path() / "f";
  ASSERT_TRUE(write_file_new(path, "a", 0640));
  EXPECT_EQ(mode_of(path), 0640U);
  EXPECT_FALSE(write_file_new(path, "b", 0600));
  EXPECT_EQ(*read_file(path), "a");
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1U) << "a temporary file was left behind";
}

// ------------------------------------------------------------------------------ online part

class FakeClock final : public Clock {
 public:
  SystemTime now() const override { return SystemTime{} + offset_; }
  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::time_point{} + offset_;
  }
  void sleep_for(Millis d) override { offset_ += d; }

 private:
  Millis offset_{0};
};

class FakeBox final : public JobSystems {
 public:
  bool up = false;
  bool wakes_up = true;
  int wakes = 0;
  int power_offs = 0;
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
    if (!wakes_up) return make_error(ExitCode::unavailable, "no SSH banner within 2s");
    up = true;
    return WaitOutcome{};
  }
  Result<std::unique_ptr<CommandRunner>> connect(const Job&) override { return make_error("not in this test"); }
  CommandRunner& local() override { throw std::logic_error("not in this test"); }
  Result<ProcessResult> run_syncoid(const std::vector<std::string>&, std::chrono::seconds, const LineCallback&,
                                    const LineCallback&, const std::atomic<bool>*) override {
    ADD_FAILURE() << "init never syncs";
    return ProcessResult{};
  }
  Result<void> power_off(const Job&) override {
    ++power_offs;
    up = false;
    return ok();
  }
  std::vector<NotificationResult> notify(const Job&, const RunRecord&) override { return {}; }
  std::vector<NotificationResult> notify_start(const Job&) override { return {}; }
  Clock& clock() override { return clock_; }

 private:
  FakeClock clock_;
};

class FakeUi final : public InitUi {
 public:
  bool answer = true;
  int key_waits_allowed = 0;
  int key_waits = 0;
  std::vector<std::string> lines;
  std::vector<std::string> questions;
  void say(std::string_view line) override { lines.emplace_back(line); }
  bool confirm(std::string_view q) override {
    questions.emplace_back(q);
    return answer;
  }
  bool wait_for_key_install(std::string_view) override { return key_waits++ < key_waits_allowed; }
  [[nodiscard]] bool said(std::string_view text) const {
    for (const auto& l : lines) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }
};

struct OnlineFixture {
  TempDir dir;
  FakeBox box;
  FakeUi ui;
  Job job;
  HostKeyInfo key;
  int pins = 0;
  std::string pinned_fp;
  int logins_failing = 0;
  int logins = 0;
  int checks = 0;
  InitOnlineEnv env{box, {}, {}, nullptr, {}, {}, {}, {}, nullptr};

  OnlineFixture() {
    job.name = "nightly";
    job.target_host = "box";
    job.mac_address = "02:00:5e:10:00:01";
    job.known_hosts = (dir.path() / "kh").string();
    key.key_type = "ssh-ed25519";
    key.fingerprint = "SHA256:abc";
    key.state = HostKeyState::unknown;
    env.state_dir = dir.path() / "state";
    env.fetch_host_key = [this](const SshOptions&) -> Result<HostKeyInfo> { return key; };
    env.pin_host_key = [this](const SshOptions&, std::string_view fp) -> Result<void> {
      ++pins;
      pinned_fp = std::string(fp);
      return ok();
    };
    env.check_login = [this](const SshOptions&) -> Result<void> {
      ++logins;
      if (logins_failing-- > 0) return make_error("public key authentication denied");
      return ok();
    };
    env.run_check = [this](const Job& j) {
      ++checks;
      CheckReport r;
      r.job = j.name;
      r.rows.push_back({"ssh login", CheckStatus::ok, "fine", ""});
      return r;
    };
  }
};

TEST(InitOnline, WakesPinsWaitsChecksAndPowersOff) {
  OnlineFixture f;
  f.logins_failing = 2;
  f.ui.key_waits_allowed = 5;
  const auto r = run_init_online(f.job, f.env, f.ui);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.woke);
  EXPECT_EQ(f.box.wakes, 1);
  EXPECT_EQ(f.pins, 1);
  EXPECT_EQ(f.pinned_fp, "SHA256:abc");  // exactly the key that was shown
  ASSERT_EQ(f.ui.questions.size(), 1U);
  EXPECT_EQ(f.logins, 3);
  EXPECT_EQ(f.ui.key_waits, 2);
  EXPECT_EQ(f.checks, 1);
  EXPECT_TRUE(r.login_ok);
  EXPECT_EQ(r.power.outcome, ShutdownOutcome::done);
  EXPECT_EQ(f.box.power_offs, 1);
  EXPECT_TRUE(f.ui.said("presents ssh-ed25519 key SHA256:abc"));
}

TEST(InitOnline, BoxAlreadyUpStaysUp) {
  OnlineFixture f;
  f.box.up = true;
  const auto r = run_init_online(f.job, f.env, f.ui);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(r.woke);
  EXPECT_EQ(f.box.wakes, 0);
  EXPECT_EQ(f.box.power_offs, 0);
  EXPECT_TRUE(f.box.up);
}

TEST(InitOnline, DeclinedHostKeyPinsNothingButPowersOff) {
  OnlineFixture f;
  f.ui.answer = false;
  const auto r = run_init_online(f.job, f.env, f.ui);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(f.pins, 0);
  EXPECT_EQ(f.logins, 0);
  EXPECT_EQ(f.checks, 0);
  EXPECT_TRUE(f.ui.said("hozo hostkey nightly --accept"));
  EXPECT_EQ(f.box.power_offs, 1);  // init woke it: it goes off again (the real one needs the login)
}

TEST(InitOnline, ChangedHostKeyIsRefused) {
  OnlineFixture f;
  f.box.up = true;
  f.key.state = HostKeyState::changed;
  const auto r = run_init_online(f.job, f.env, f.ui);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(f.pins, 0);
  EXPECT_TRUE(f.ui.questions.empty());
  EXPECT_TRUE(f.ui.said("DIFFERENT key"));
}

TEST(InitOnline, KeyNeverInstalled) {
  OnlineFixture f;
  f.box.up = true;
  f.key.state = HostKeyState::known;
  f.logins_failing = 100;
  f.ui.key_waits_allowed = 3;
  const auto r = run_init_online(f.job, f.env, f.ui);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(f.logins, 4);
  EXPECT_EQ(f.checks, 0);
  EXPECT_TRUE(f.ui.said("then `hozo check nightly`"));
}

TEST(InitOnline, BoxNeverWakes) {
  OnlineFixture f;
  f.box.wakes_up = false;
  const auto r = run_init_online(f.job, f.env, f.ui);
  EXPECT_EQ(r.exit_code, 69);
  EXPECT_EQ(f.pins, 0);
  EXPECT_EQ(f.box.power_offs, 0);
}

TEST(InitOnline, NoWolAndBoxOff) {
  OnlineFixture f;
  f.job.mac_address.clear();
  const auto r = run_init_online(f.job, f.env, f.ui);
  EXPECT_EQ(r.exit_code, 69);
  EXPECT_EQ(f.box.wakes, 0);
}

TEST(InitOnline, FailedCheckIsExitOne) {
  OnlineFixture f;
  f.box.up = true;
  f.env.run_check = [](const Job& j) {
    CheckReport r;
    r.job = j.name;
    r.rows.push_back({"permissions", CheckStatus::fail, "no", "zfs allow"});
    return r;
  };
  EXPECT_EQ(run_init_online(f.job, f.env, f.ui).exit_code, 1);
}

}  // namespace
}  // namespace hozo
