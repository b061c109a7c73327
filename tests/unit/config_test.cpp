#include <gtest/gtest.h>

#include "test_support.hpp"

#include <unistd.h>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "hozo/config.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"

using namespace hozo;
namespace fs = std::filesystem;

namespace {

const std::string kSource = HOZO_SOURCE_DIR;

/// Lines joined with '\n' so tests can point at line numbers.
std::string lines(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (const auto p : parts) {
    out += p;
    out += '\n';
  }
  return out;
}

/// A valid one-job config; `job_extra` lines are appended to the job, `settings` lines go first.
std::string config(std::initializer_list<std::string_view> job_extra = {},
                   std::initializer_list<std::string_view> settings = {}) {
  std::string out;
  if (settings.size() != 0) {
    out += "settings:\n";
    for (const auto s : settings) out += fmt::format("  {}\n", s);
  }
  out += lines({"jobs:", "  - name: data", "    source_dataset: tank/data", "    target_dataset: backup/data",
                "    target_host: 192.0.2.10", "    mac_address: \"00:11:22:33:44:55\""});
  for (const auto e : job_extra) out += fmt::format("    {}\n", e);
  return out;
}

Config parse_ok(const std::string& text) {
  auto r = parse_config(text, "test.yaml");
  EXPECT_TRUE(r.ok()) << text << "\n--> " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : Config{};
}

/// The error text of a config that must fail (empty when it unexpectedly succeeded).
std::string parse_error(const std::string& text) {
  auto r = parse_config(text, "test.yaml");
  EXPECT_FALSE(r.ok()) << "expected a config error for:\n" << text;
  if (r.ok()) return {};
  EXPECT_EQ(r.error().code, ExitCode::config);
  return r.error().message;
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "missing: " << (needle) << "\nin:\n" << (haystack)

using TempDir = hozo::test::TempDir;

using ScopedEnv = hozo::test::ScopedEnv;

}  // namespace

// --- the example and the sample configs ---------------------------------------------------------

TEST(ConfigExample, IsByteIdenticalToExamplesFile) {
  const auto file = read_file(kSource + "/examples/hozo.yaml");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(example_config(), *file) << "examples/hozo.yaml and example_config() differ";
}

TEST(ConfigExample, ValidatesCleanlyAndShowsTheFeatures) {
  std::vector<ConfigIssue> issues;
  auto r = parse_config(example_config(), "hozo.yaml", &issues);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(issues.empty());
  const auto& cfg = *r;
  ASSERT_EQ(cfg.jobs.size(), 3U);
  EXPECT_TRUE(cfg.notices.empty());

  const Job* data = cfg.find_job("tank-data");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->datasets.size(), 1U);
  EXPECT_EQ(data->wol_broadcast, "192.0.2.255");
  EXPECT_EQ(data->syncoid.compress, "lz4");  // from settings
  // Nothing is sent anywhere until the user sets a channel up (issue #16), and no fake disk is waited for.
  EXPECT_FALSE(data->notifications.smtp.has_value());
  EXPECT_TRUE(data->notifications.ntfy_topic.empty());
  EXPECT_TRUE(data->backup_device.empty());

  const Job* vms = cfg.find_job("offsite-vms");
  ASSERT_NE(vms, nullptr);
  ASSERT_EQ(vms->datasets.size(), 2U);
  EXPECT_TRUE(vms->datasets[0].recursive);
  EXPECT_FALSE(vms->datasets[1].recursive);
  EXPECT_EQ(vms->mac_address, "00:11:22:33:44:66");
  EXPECT_EQ(vms->ssh_port, 2222);
  EXPECT_EQ(vms->host_sharing, HostSharing::wait);
  ASSERT_TRUE(vms->wol_relay.has_value());
  EXPECT_EQ(vms->wol_relay->user, "pi");
  EXPECT_EQ(vms->notifications.notify_on, std::vector<NotifyOn>{NotifyOn::failure});
  EXPECT_TRUE(vms->notifications.ntfy_topic.empty());
  EXPECT_EQ(vms->syncoid.source_bwlimit, "20M");
  EXPECT_EQ(vms->syncoid.compress, "lz4");

  const Job* nas = cfg.find_job("nas-mirror");
  ASSERT_NE(nas, nullptr);
  EXPECT_TRUE(nas->mac_address.empty());
  EXPECT_FALSE(nas->shutdown_after);
  EXPECT_EQ(nas->schedule, "");
  EXPECT_EQ(cfg.find_job("nope"), nullptr);
}

TEST(ConfigSamples, PythonHozoFormatLoadsUnchanged) {
  auto r = load_config(kSource + "/tests/config/python-hozo.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& cfg = *r;
  ASSERT_EQ(cfg.jobs.size(), 3U);
  ASSERT_EQ(cfg.notices.size(), 1U);
  EXPECT_CONTAINS(cfg.notices[0], "python-hozo.yaml:19:1: auth: ignored");

  const Job& photos = cfg.jobs[0];
  EXPECT_EQ(photos.name, "photos");
  ASSERT_EQ(photos.datasets.size(), 1U);
  EXPECT_EQ(photos.datasets[0].source, "tank/photos");  // `source` alias
  EXPECT_EQ(photos.datasets[0].target, "backup/photos");
  EXPECT_TRUE(photos.datasets[0].recursive);
  EXPECT_EQ(photos.mac_address, "aa:bb:cc:dd:ee:01");  // normalized
  EXPECT_EQ(photos.wol_broadcast, "192.0.2.255");      // `broadcast_ip` alias
  EXPECT_EQ(photos.schedule, "weekly Sunday 03:00");
  EXPECT_EQ(photos.ssh_timeout, std::chrono::seconds(120));
  EXPECT_EQ(photos.notifications.ntfy_topic, "hozo-backups");
  EXPECT_TRUE(photos.notifications.pushover_token.empty());
  ASSERT_TRUE(photos.notifications.smtp.has_value());
  EXPECT_EQ(photos.notifications.smtp->host, "smtp.example.com");
  EXPECT_EQ(photos.notifications.smtp->password.reveal(), "example-app-password");
  EXPECT_EQ(photos.notifications.smtp->password.origin(), "inline");

  const Job& docs = cfg.jobs[1];
  EXPECT_EQ(docs.mac_address, "aa:bb:cc:dd:ee:02");
  EXPECT_FALSE(docs.datasets[0].recursive);
  EXPECT_FALSE(docs.shutdown_after);
  EXPECT_TRUE(docs.no_privilege_elevation);
  EXPECT_EQ(docs.backup_device, "/dev/disk/by-id/usb-Example_Disk_0001-0:0");
  EXPECT_EQ(docs.ssh_key, "");
  EXPECT_EQ(cfg.jobs[2].schedule, "");
}

TEST(ConfigSamples, MinimalConfigLoads) {
  auto r = load_config(kSource + "/tests/config/minimal.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->path, fs::path(kSource + "/tests/config/minimal.yaml"));
}

TEST(ConfigSamples, EveryMalformedConfigFailsWithItsExpectedMessage) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kSource + "/tests/config/malformed")) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 22U);
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    const auto text = read_file(file);
    ASSERT_TRUE(text.ok());
    const auto first_line = split_lines(*text).at(0);
    ASSERT_TRUE(first_line.starts_with("# expect: ")) << "first line must be '# expect: <substring>'";
    const auto expected = std::string(first_line.substr(10));
    std::vector<ConfigIssue> issues;
    auto r = load_config(file, &issues);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ExitCode::config);
    EXPECT_CONTAINS(r.error().message, expected);
    EXPECT_FALSE(issues.empty());
    // Every line names the file and a position.
    for (const auto line : split_lines(r.error().message)) EXPECT_TRUE(line.starts_with(file.string() + ":")) << line;
  }
}

// --- defaults and inheritance ---------------------------------------------------------------------

TEST(ConfigDefaults, MatchThePythonTool) {
  const auto cfg = parse_ok(config());
  ASSERT_EQ(cfg.jobs.size(), 1U);
  const Job& j = cfg.jobs[0];
  EXPECT_EQ(j.ssh_timeout, std::chrono::seconds(120));
  EXPECT_EQ(j.ssh_user, "root");
  EXPECT_EQ(j.ssh_port, 22);
  EXPECT_TRUE(j.datasets.at(0).recursive);
  EXPECT_TRUE(j.shutdown_after);
  EXPECT_EQ(j.retries, 3);
  EXPECT_EQ(j.retry_delay, std::chrono::seconds(60));
  EXPECT_EQ(j.wol_broadcast, "255.255.255.255");
  EXPECT_EQ(j.disk_spinup_timeout, std::chrono::seconds(90));
  // Extensions.
  EXPECT_EQ(j.host_key_policy, HostKeyPolicy::strict);
  EXPECT_EQ(j.shutdown_command, "shutdown -h now");
  EXPECT_TRUE(j.shutdown_only_if_woken);
  EXPECT_TRUE(j.target_pool_import);
  EXPECT_EQ(j.host_sharing, HostSharing::concurrent);
  EXPECT_EQ(j.wol_port, 9);
  EXPECT_EQ(j.wol_repeat, 3);
  EXPECT_EQ(j.ssh_connect_timeout, std::chrono::seconds(10));
  EXPECT_EQ(j.syncoid.path, "syncoid");
  EXPECT_FALSE(j.wol_relay.has_value());
  EXPECT_FALSE(j.agent.has_value());
  EXPECT_FALSE(j.notifications.smtp.has_value());
  EXPECT_EQ((std::vector<NotifyOn>{NotifyOn::success, NotifyOn::failure}), j.notifications.notify_on);
  EXPECT_EQ(cfg.history_limit, 50U);
  EXPECT_EQ(cfg.log_keep, 20U);
  EXPECT_EQ(j.where.line, 2);
  EXPECT_EQ(j.where.column, 5);
}

TEST(ConfigDefaults, NullValueKeepsTheDefault) {
  const auto cfg = parse_ok(config({"ssh_port:", "ssh_user: ~", "description:"}));
  EXPECT_EQ(cfg.jobs.at(0).ssh_port, 22);
  EXPECT_EQ(cfg.jobs.at(0).ssh_user, "root");
}

TEST(ConfigInheritance, SettingsApplyToEveryJobUnlessOverridden) {
  const std::string text = lines({
      "settings:",
      "  ssh_port: 2200",
      "  retries: 5",
      "  target_host: backup.example.com",
      "  mac_address: 00-11-22-33-44-55",
      "  history: 7",
      "  log_keep: 3",
      "  syncoid:",
      "    compress: zstd-fast",
      "    source_bwlimit: 10M",
      "  notifications:",
      "    ntfy_topic: backups",
      "    notify_on: failure",
      "    smtp:",
      "      host: smtp.example.com",
      "      from_addr: hozo@example.com",
      "      to_addr: [a@example.com, b@example.com]",
      "jobs:",
      "  - name: one",
      "    source: tank/a",
      "    target_dataset: backup/a",
      "    retries: 1",
      "    syncoid:",
      "      source_bwlimit: 1M",
      "    notifications:",
      "      notify_on: [success, failure]",
      "      smtp:",
      "        port: 465",
      "  - name: two",
      "    source: tank/b",
      "    target_dataset: backup/b",
  });
  const auto cfg = parse_ok(text);
  ASSERT_EQ(cfg.jobs.size(), 2U);
  const Job& one = cfg.jobs[0];
  const Job& two = cfg.jobs[1];
  EXPECT_EQ(cfg.history_limit, 7U);
  EXPECT_EQ(cfg.log_keep, 3U);
  EXPECT_EQ(one.ssh_port, 2200);
  EXPECT_EQ(two.ssh_port, 2200);
  EXPECT_EQ(one.retries, 1);
  EXPECT_EQ(two.retries, 5);
  EXPECT_EQ(one.target_host, "backup.example.com");
  EXPECT_EQ(two.mac_address, "00:11:22:33:44:55");
  EXPECT_EQ(one.syncoid.compress, "zstd-fast");
  EXPECT_EQ(one.syncoid.source_bwlimit, "1M");
  EXPECT_EQ(two.syncoid.source_bwlimit, "10M");
  EXPECT_EQ(one.notifications.ntfy_topic, "backups");
  EXPECT_EQ(one.notifications.notify_on.size(), 2U);
  EXPECT_EQ(two.notifications.notify_on, std::vector<NotifyOn>{NotifyOn::failure});
  ASSERT_TRUE(one.notifications.smtp && two.notifications.smtp);
  EXPECT_EQ(one.notifications.smtp->port, 465);
  EXPECT_EQ(one.notifications.smtp->host, "smtp.example.com");
  EXPECT_EQ(one.notifications.smtp->to_addr.size(), 2U);
  EXPECT_EQ(two.notifications.smtp->port, 587);
}

TEST(ConfigInheritance, JobCanSwitchOffSmtp) {
  const auto cfg = parse_ok(config({"notifications:", "  smtp:", "    host: \"\""},
                                   {"notifications:", "  smtp:", "    host: smtp.example.com",
                                    "    from_addr: a@example.com", "    to_addr: b@example.com"}));
  EXPECT_FALSE(cfg.jobs.at(0).notifications.smtp.has_value());
}

TEST(ConfigInheritance, JobOnlyAndSettingsOnlyKeys) {
  EXPECT_CONTAINS(parse_error(config({}, {"name: x"})), "settings.name: only allowed in a job entry");
  EXPECT_CONTAINS(parse_error(config({}, {"datasets: []"})), "settings.datasets: only allowed in a job entry");
  EXPECT_CONTAINS(parse_error(config({"log_keep: 3"})), "jobs[0].log_keep: only allowed in settings");
}

// --- messages -------------------------------------------------------------------------------------

TEST(ConfigMessages, FileLineColumnAndPath) {
  std::vector<ConfigIssue> issues;
  auto r = parse_config(config({"ssh_port: 0"}), "/etc/hozo/hozo.yaml", &issues);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(issues.size(), 1U);
  EXPECT_EQ(issues[0].where.file, "/etc/hozo/hozo.yaml");
  EXPECT_EQ(issues[0].where.line, 7);
  EXPECT_EQ(issues[0].where.column, 15);
  EXPECT_EQ(issues[0].path, "jobs[0].ssh_port");
  EXPECT_EQ(r.error().message, "/etc/hozo/hozo.yaml:7:15: jobs[0].ssh_port: \"0\" is out of range (1..65535)");
  EXPECT_EQ(issues[0].to_string(), r.error().message);
}

TEST(ConfigMessages, InvalidMacMessage) {
  const auto text = lines({"jobs:", "  - name: a", "    source_dataset: tank/a", "    target_dataset: b/a",
                           "    target_host: 192.0.2.1", "    mac_address: \"zz:11:22:33:44:55\""});
  EXPECT_CONTAINS(parse_error(text), "test.yaml:6:18: jobs[0].mac_address: invalid MAC \"zz:11:22:33:44:55\"");
}

TEST(ConfigMessages, UnknownKeyWithHint) {
  const auto msg = parse_error(config({"mac_adress: \"00:11:22:33:44:55\""}));
  EXPECT_CONTAINS(msg, "test.yaml:7:5: jobs[0].mac_adress: unknown key \"mac_adress\" (did you mean \"mac_address\"?)");
  EXPECT_CONTAINS(parse_error(config({"syncoid:", "  compres: lz4"})), "(did you mean \"compress\"?)");
  EXPECT_CONTAINS(parse_error(config({}, {"notifications:", "  ntfy_topik: x"})), "(did you mean \"ntfy_topic\"?)");
  EXPECT_CONTAINS(parse_error("setings: {}\n" + config()), "unknown key \"setings\" (did you mean \"settings\"?)");
  const auto no_hint = parse_error(config({"zzzzzzzz: 1"}));
  EXPECT_EQ(no_hint.find("did you mean"), std::string::npos);
}

TEST(ConfigMessages, AllIssuesAreReportedAtOnceInFileOrder) {
  std::vector<ConfigIssue> issues;
  auto r = parse_config(
      config({"ssh_port: x", "retries: -1", "wol_repeat: 0", "host_sharing: sometimes"}, {"ssh_user: Root"}), "c.yaml",
      &issues);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(issues.size(), 5U) << r.error().message;
  EXPECT_EQ(split_lines(r.error().message).size(), 5U);
  EXPECT_EQ(issues[0].path, "settings.ssh_user");
  EXPECT_EQ(issues[1].path, "jobs[0].ssh_port");
  EXPECT_EQ(issues[2].path, "jobs[0].retries");
  EXPECT_EQ(issues[3].path, "jobs[0].wol_repeat");
  EXPECT_EQ(issues[4].path, "jobs[0].host_sharing");
  for (std::size_t i = 1; i < issues.size(); ++i) EXPECT_GT(issues[i].where.line, issues[i - 1].where.line);
}

TEST(ConfigMessages, YamlSyntaxErrorHasPosition) {
  std::vector<ConfigIssue> issues;
  auto r = parse_config("jobs:\n  - name: a\n    x: [1, 2\n", "s.yaml", &issues);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(issues.size(), 1U);
  EXPECT_GT(issues[0].where.line, 0);
  EXPECT_CONTAINS(r.error().message, "YAML syntax error");
  EXPECT_TRUE(r.error().message.starts_with("s.yaml:"));
}

TEST(ConfigMessages, RootShape) {
  EXPECT_CONTAINS(parse_error(""), "empty");
  EXPECT_CONTAINS(parse_error("# only a comment\n"), "empty");
  EXPECT_CONTAINS(parse_error("- a\n- b\n"), "top level must be a mapping");
  EXPECT_CONTAINS(parse_error("just a string\n"), "top level must be a mapping");
  EXPECT_CONTAINS(parse_error("settings: {}\n"), "jobs: required key missing");
  EXPECT_CONTAINS(parse_error(config() + "---\njobs: []\n"), "only one YAML document");
  EXPECT_CONTAINS(parse_error(","), "test.yaml:1:1: YAML syntax error");
  EXPECT_CONTAINS(parse_error("jobs: 5\n"), "jobs: expected a list of jobs");
  EXPECT_CONTAINS(parse_error("jobs: [5]\n"), "jobs[0]: expected a job mapping");
  EXPECT_CONTAINS(parse_error("settings: [1]\njobs: []\n"), "settings: expected a mapping, got a list");
  EXPECT_CONTAINS(parse_error("? [a]\n: b\njobs: []\n"), "keys must be plain words");
  const auto empty_jobs = parse_ok("jobs: []\n");
  EXPECT_TRUE(empty_jobs.jobs.empty());
  EXPECT_EQ(empty_jobs.notices, std::vector<std::string>{"no jobs defined"});
}

// --- validation rules -----------------------------------------------------------------------------

TEST(ConfigValidation, RequiredKeys) {
  const auto msg = parse_error("jobs:\n  - description: nothing else\n");
  for (const auto* key : {"name", "target_host", "mac_address", "source_dataset", "target_dataset"}) {
    EXPECT_CONTAINS(msg, fmt::format("test.yaml:2:5: jobs[0].{}: required key missing", key));
  }
  // A key given but invalid is not also reported as missing.
  const auto invalid = parse_error(config({}, {}).replace(config().find("192.0.2.10"), 10, "bad host!"));
  EXPECT_EQ(invalid.find("required"), std::string::npos) << invalid;
}

TEST(ConfigValidation, MacOptionalOnlyWithWolFalse) {
  const auto text =
      lines({"jobs:", "  - name: a", "    source: tank/a", "    target_dataset: b/a", "    target_host: 192.0.2.1"});
  EXPECT_CONTAINS(parse_error(text), "jobs[0].mac_address: required key missing");
  const auto cfg = parse_ok(text + "    wol: false\n");
  EXPECT_TRUE(cfg.jobs.at(0).mac_address.empty());
  EXPECT_TRUE(parse_ok(config({"wol: false"})).jobs.at(0).mac_address.empty());
}

TEST(ConfigValidation, Types) {
  EXPECT_CONTAINS(parse_error(config({"ssh_port: twenty"})), "jobs[0].ssh_port: expected an integer, got \"twenty\"");
  EXPECT_CONTAINS(parse_error(config({"ssh_port: 22.5"})), "expected an integer");
  EXPECT_CONTAINS(parse_error(config({"ssh_port: [22]"})), "jobs[0].ssh_port: expected an integer, got a list");
  EXPECT_CONTAINS(parse_error(config({"ssh_user: {a: b}"})), "jobs[0].ssh_user: expected a string, got a mapping");
  EXPECT_CONTAINS(parse_error(config({"recursive: 2"})), "jobs[0].recursive: expected true or false");
  EXPECT_CONTAINS(parse_error(config({"syncoid: lz4"})), "jobs[0].syncoid: expected a mapping, got a single value");
  EXPECT_CONTAINS(parse_error(config({"syncoid:", "  extra_args: --foo"})), "expected a list, got a single value");
  EXPECT_CONTAINS(parse_error(config({"ssh_port: 99999999999999999999999999"})), "out of range");
  EXPECT_EQ(parse_ok(config({"ssh_port: \"2222\""})).jobs.at(0).ssh_port, 2222);  // quoted numbers are fine
  for (const auto* yes : {"true", "True", "yes", "on"}) {
    EXPECT_TRUE(parse_ok(config({fmt::format("no_privilege_elevation: {}", yes)})).jobs.at(0).no_privilege_elevation);
  }
  for (const auto* no : {"false", "FALSE", "no", "off"}) {
    EXPECT_FALSE(parse_ok(config({fmt::format("shutdown_after: {}", no)})).jobs.at(0).shutdown_after);
  }
}

TEST(ConfigValidation, Ranges) {
  EXPECT_CONTAINS(parse_error(config({"ssh_port: 0"})), "(1..65535)");
  EXPECT_CONTAINS(parse_error(config({"ssh_port: 65536"})), "(1..65535)");
  EXPECT_CONTAINS(parse_error(config({"wol_port: 70000"})), "jobs[0].wol_port");
  EXPECT_CONTAINS(parse_error(config({"retries: 101"})), "(0..100)");
  EXPECT_CONTAINS(parse_error(config({"retries: -1"})), "(0..100)");
  EXPECT_CONTAINS(parse_error(config({"wol_repeat: 0"})), "(1..100)");
  EXPECT_CONTAINS(parse_error(config({}, {"history: 10001"})), "(1..10000)");
  EXPECT_CONTAINS(parse_error(config({"ssh_timeout: 0"})), "jobs[0].ssh_timeout: duration \"0\" is out of range");
  EXPECT_CONTAINS(parse_error(config({"notifications:", "  timeout: 1h"})), "notifications.timeout");
  EXPECT_CONTAINS(parse_error(config({"wol_relay:", "  host: 192.0.2.5", "  port: 0"})), "jobs[0].wol_relay.port");
  EXPECT_CONTAINS(parse_error(config({}, {"notifications:", "  smtp:", "    port: 0"})), "smtp.port");
  const auto cfg = parse_ok(config({"retries: 0", "wol_repeat: 100", "ssh_port: 65535"}, {"history: 10000"}));
  EXPECT_EQ(cfg.jobs.at(0).retries, 0);
  EXPECT_EQ(cfg.history_limit, 10000U);
}

TEST(ConfigValidation, Durations) {
  const auto cfg =
      parse_ok(config({"ssh_timeout: 5m", "retry_delay: 90s", "host_lock_timeout: 1h30m", "disk_spinup_timeout: 120",
                       "ssh_connect_timeout: 15", "syncoid:", "  timeout: 6h"}));
  const Job& j = cfg.jobs.at(0);
  EXPECT_EQ(j.ssh_timeout, std::chrono::seconds(300));
  EXPECT_EQ(j.retry_delay, std::chrono::seconds(90));
  EXPECT_EQ(j.host_lock_timeout, std::chrono::seconds(5400));
  EXPECT_EQ(j.disk_spinup_timeout, std::chrono::seconds(120));
  EXPECT_EQ(j.ssh_connect_timeout, std::chrono::seconds(15));
  EXPECT_EQ(j.syncoid.timeout, std::chrono::seconds(6 * 3600));
  EXPECT_CONTAINS(parse_error(config({"retry_delay: 5x"})), "jobs[0].retry_delay: invalid duration \"5x\"");
  EXPECT_CONTAINS(parse_error(config({"retry_delay: -5"})), "invalid duration");
}

TEST(ConfigValidation, DuplicateJobNamesAndKeys) {
  const auto text = config() + lines({"  - name: data", "    source_dataset: tank/x", "    target_dataset: backup/x",
                                      "    target_host: 192.0.2.10", "    mac_address: 00:11:22:33:44:55"});
  EXPECT_CONTAINS(parse_error(text), "test.yaml:7:5: jobs[1]: duplicate job name \"data\" (first defined at line 2)");
  EXPECT_CONTAINS(parse_error(config({"ssh_port: 22", "ssh_port: 23"})), "jobs[0].ssh_port: duplicate key");
  EXPECT_CONTAINS(parse_error("jobs: []\njobs: []\n"), "jobs: duplicate key");
}

TEST(ConfigValidation, JobNames) {
  for (const auto* good : {"a", "data", "Tank-Data_1.daily", "0backup",
                           "a123456789012345678901234567890123456789012345678901234567890bc"}) {
    auto text = config();
    text.replace(text.find("name: data"), 10, fmt::format("name: \"{}\"", good));
    EXPECT_TRUE(parse_config(text, "t").ok()) << good;
  }
  for (const auto* bad : {"-data", ".hidden", "_x", "a b", "a/b", "a;b", "data$", "x\\ty",
                          "a1234567890123456789012345678901234567890123456789012345678901234"}) {
    auto text = config();
    text.replace(text.find("name: data"), 10, fmt::format("name: \"{}\"", bad));
    EXPECT_CONTAINS(parse_error(text), "jobs[0].name: ");
  }
}

TEST(ConfigValidation, MacAddresses) {
  const auto mac = [](const char* m) {
    auto text = config();
    text.replace(text.find("\"00:11:22:33:44:55\""), 19, fmt::format("\"{}\"", m));
    return text;
  };
  EXPECT_EQ(parse_ok(mac("AA-BB-CC-DD-EE-FF")).jobs.at(0).mac_address, "aa:bb:cc:dd:ee:ff");
  EXPECT_EQ(parse_ok(mac("0a:1B:2c:3D:4e:5F")).jobs.at(0).mac_address, "0a:1b:2c:3d:4e:5f");
  for (const auto* bad : {"zz:11:22:33:44:55", "00:11:22:33:44", "00:11:22:33:44:55:66", "00-11:22:33:44:55",
                          "001122334455", "00.11.22.33.44.55", "0:11:22:33:44:55", ""}) {
    EXPECT_CONTAINS(parse_error(mac(bad)), "jobs[0].mac_address: invalid MAC");
  }
}

TEST(ConfigValidation, DatasetNames) {
  const auto with_source = [](const std::string& ds) {
    auto text = config();
    std::string quoted = "'";
    for (const char c : ds) quoted += c == '\'' ? std::string("''") : std::string(1, c);
    text.replace(text.find("tank/data"), 9, quoted + "'");
    return text;
  };
  for (const auto* good : {"tank", "tank/data", "Tank/a_b.c:d-e", "t1/x/y/z"}) {
    EXPECT_TRUE(parse_config(with_source(good), "t").ok()) << good;
  }
  for (const std::string& bad : std::vector<std::string>{"",
                                                         "tank/my data",
                                                         "tank/a'b",
                                                         "tank/a\"b",
                                                         "tank/a;b",
                                                         "tank/$x",
                                                         "tank/`x`",
                                                         "tank/../x",
                                                         "tank/./x",
                                                         "tank//x",
                                                         "-tank",
                                                         "/tank",
                                                         "tank/",
                                                         "tank/x@snap",
                                                         "tank/x#mark",
                                                         "1tank/x",
                                                         "_tank",
                                                         "mirror/x",
                                                         "raidz2/x",
                                                         "log/x",
                                                         "tank/x%y",
                                                         std::string("tank/") + std::string(260, 'a')}) {
    EXPECT_CONTAINS(parse_error(with_source(bad)), "jobs[0].source_dataset: invalid dataset name");
  }
  EXPECT_TRUE(parse_config(with_source("logs/x"), "t").ok());  // only exactly "log" is reserved
}

TEST(ConfigValidation, Hosts) {
  const auto with_host = [](const char* h) {
    auto text = config();
    text.replace(text.find("192.0.2.10"), 10, fmt::format("\"{}\"", h));
    return text;
  };
  for (const auto* good : {"192.0.2.10", "2001:db8::1", "::1", "backup", "backup.example.com", "b-1.example.com",
                           "xn--bcher-kva.example"}) {
    EXPECT_TRUE(parse_config(with_host(good), "t").ok()) << good;
  }
  for (const auto* bad : {"", "-backup", "backup-", "back_up", "a..b", "back up", "host;reboot", "$(reboot)",
                          "[2001:db8::1]", "root@backup", "backup.example.com."}) {
    EXPECT_CONTAINS(parse_error(with_host(bad)), "jobs[0].target_host: invalid host");
  }
  EXPECT_CONTAINS(parse_error(with_host("root@backup")), "put the user in ssh_user");
}

TEST(ConfigValidation, UsersPathsDevices) {
  EXPECT_EQ(parse_ok(config({"ssh_user: backup_user-1.x"})).jobs.at(0).ssh_user, "backup_user-1.x");
  for (const auto* bad : {"Root", "1user", "us er", "root;id", "$(id)", "-root"}) {
    EXPECT_CONTAINS(parse_error(config({fmt::format("ssh_user: \"{}\"", bad)})), "jobs[0].ssh_user: invalid user name");
  }
  EXPECT_EQ(parse_ok(config({"ssh_key: /etc/hozo/id_ed25519"})).jobs.at(0).ssh_key, "/etc/hozo/id_ed25519");
  {
    const ScopedEnv home("HOME", "/home/tester");
    EXPECT_EQ(parse_ok(config({"ssh_key: ~/.ssh/id_ed25519"})).jobs.at(0).ssh_key, "/home/tester/.ssh/id_ed25519");
  }
  for (const auto* bad : {"relative/key", "/etc/my key", "/etc/key;rm", "/etc/$(id)", "/etc/`id`", "/etc/'k'"}) {
    EXPECT_CONTAINS(parse_error(config({fmt::format("ssh_key: \"{}\"", bad)})), "jobs[0].ssh_key: ");
  }
  EXPECT_CONTAINS(parse_error(config({"known_hosts: \"known hosts\""})), "jobs[0].known_hosts: invalid path");
  EXPECT_EQ(parse_ok(config({"backup_device: /dev/disk/by-id/ata-X_1-part1"})).jobs.at(0).backup_device,
            "/dev/disk/by-id/ata-X_1-part1");
  for (const auto* bad : {"/dev/", "/etc/passwd", "/dev/../etc/passwd", "/dev/sda;reboot", "/dev/sd a", "sda"}) {
    EXPECT_CONTAINS(parse_error(config({fmt::format("backup_device: \"{}\"", bad)})),
                    "jobs[0].backup_device: invalid device");
  }
  EXPECT_CONTAINS(parse_error(config({"wol_interface: \"eth0;x\""})), "invalid network interface");
  EXPECT_EQ(parse_ok(config({"wol_interface: enp3s0"})).jobs.at(0).wol_interface, "enp3s0");
}

TEST(ConfigValidation, Schedules) {
  for (const auto* good : {"daily 03:00", "weekly Sunday 03:00", "weekly sun 3:00", "30 2 * * 1-5", "daily", "weekly",
                           "hourly", "*-*-* 03:00:00", "Mon..Fri *-*-* 02:30", "Sun 03:00", ""}) {
    EXPECT_TRUE(parse_config(config({fmt::format("schedule: \"{}\"", good)}), "t").ok()) << good;
  }
  EXPECT_CONTAINS(parse_error(config({"schedule: \"daily 25:00\""})),
                  "jobs[0].schedule: invalid schedule \"daily 25:00\"");
  EXPECT_CONTAINS(parse_error(config({"schedule: \"every day\""})), "jobs[0].schedule: invalid schedule");
}

TEST(ConfigValidation, ShellSafety) {
  EXPECT_CONTAINS(parse_error(config({"shutdown_command: \"poweroff\\nreboot\""})),
                  "jobs[0].shutdown_command: must be a single line");
  EXPECT_CONTAINS(parse_error(config({"syncoid:", "  sendoptions: \"w\\0\""})), "contains a NUL character");
  EXPECT_CONTAINS(parse_error(config({"syncoid:", "  recvoptions: \"u\\r\""})), "must be a single line");
  EXPECT_CONTAINS(parse_error(config({"syncoid:", "  extra_args: [\"--a\", \"--b\\nc\"]"})),
                  "jobs[0].syncoid.extra_args[1]: must be a single line");
  EXPECT_CONTAINS(parse_error(config({"wol_relay:", "  host: 192.0.2.5", "  command: [\"wake\\x1b\"]"})),
                  "contains a control character");
  EXPECT_CONTAINS(parse_error(config({"syncoid:", "  path: \"syncoid; reboot\""})),
                  "jobs[0].syncoid.path: invalid program");
  // Allowed: a remote shell command for shutdown, syncoid options with spaces.
  const auto cfg =
      parse_ok(config({"shutdown_command: \"sudo /sbin/poweroff -f\"", "syncoid:", "  sendoptions: \"w c\"",
                       "  extra_args: [\"--no-rollback\", \"--mbuffer-size=1G\"]"}));
  EXPECT_EQ(cfg.jobs.at(0).shutdown_command, "sudo /sbin/poweroff -f");
  EXPECT_EQ(cfg.jobs.at(0).syncoid.extra_args.size(), 2U);
  // Descriptions may span lines.
  EXPECT_EQ(parse_ok(config({"description: |", "  line one", "  line two"})).jobs.at(0).description,
            "line one\nline two\n");
}

TEST(ConfigValidation, DatasetsList) {
  const auto text =
      lines({"jobs:", "  - name: multi", "    target_host: 192.0.2.1", "    mac_address: 00:11:22:33:44:55",
             "    recursive: false", "    datasets:", "      - source: tank/a", "        target: b/a",
             "      - source_dataset: tank/b", "        target_dataset: b/b", "        recursive: true"});
  const auto cfg = parse_ok(text);
  const auto& ds = cfg.jobs.at(0).datasets;
  ASSERT_EQ(ds.size(), 2U);
  EXPECT_EQ(ds[0].source, "tank/a");
  EXPECT_FALSE(ds[0].recursive);  // the job's recursive
  EXPECT_EQ(ds[1].target, "b/b");
  EXPECT_TRUE(ds[1].recursive);

  EXPECT_CONTAINS(parse_error(config({"datasets:", "  - source: tank/x", "    target: b/x"})), "not both");
  EXPECT_CONTAINS(parse_error(text + "      - source: tank/c\n"), "jobs[0].datasets[2]: target: required key missing");
  EXPECT_CONTAINS(parse_error(text + "      - source: tank/c\n        target: b/a\n"), "target \"b/a\" is used twice");
  EXPECT_CONTAINS(parse_error(text + "      - source: tank/c\n        target: b/c\n        recursve: true\n"),
                  "did you mean \"recursive\"?");
  EXPECT_CONTAINS(parse_error(text + "      - tank/c\n"), "jobs[0].datasets[2]: expected a mapping");
  EXPECT_CONTAINS(parse_error(text.substr(0, text.find("    datasets:")) + "    datasets: []\n"),
                  "must list at least one dataset");
}

TEST(ConfigValidation, AliasConflicts) {
  EXPECT_CONTAINS(parse_error(config({"source: tank/other"})),
                  "\"source_dataset\" and \"source\" are both given; use only one");
  EXPECT_CONTAINS(parse_error(config({"wol_broadcast: 192.0.2.255", "broadcast_ip: 192.0.2.255"})),
                  "\"wol_broadcast\" and \"broadcast_ip\" are both given");
  // An alias in settings, the canonical key in the job: the job wins.
  EXPECT_EQ(parse_ok(config({"wol_broadcast: 192.0.2.127"}, {"broadcast_ip: 192.0.2.255"})).jobs.at(0).wol_broadcast,
            "192.0.2.127");
}

TEST(ConfigValidation, EnumsAndNotifications) {
  const auto cfg =
      parse_ok(config({"host_key_policy: accept-new", "host_sharing: wait", "notifications:", "  notify_on: []",
                       "  ntfy_server: https://ntfy.example.com", "  healthchecks_url: https://hc.example.com/ping/abc",
                       "  webhook_url: http://192.0.2.9:8080/hook"}));
  const Job& j = cfg.jobs.at(0);
  EXPECT_EQ(j.host_key_policy, HostKeyPolicy::accept_new);
  EXPECT_EQ(j.host_sharing, HostSharing::wait);
  EXPECT_TRUE(j.notifications.notify_on.empty());
  EXPECT_EQ(j.notifications.ntfy_server, "https://ntfy.example.com");
  EXPECT_CONTAINS(parse_error(config({"notifications:", "  notify_on: [sucess]"})), "invalid value \"sucess\"");
  EXPECT_CONTAINS(parse_error(config({"notifications:", "  webhook_url: ftp://x"})), "invalid URL");
  EXPECT_CONTAINS(parse_error(config({"notifications:", "  ntfy_topic: \"a b\""})), "invalid ntfy topic");
  EXPECT_CONTAINS(parse_error(config({"notifications:", "  smtp:", "    host: smtp.example.com",
                                      "    from_addr: not-an-address", "    to_addr: a@example.com"})),
                  "smtp.from_addr: invalid e-mail address");
  EXPECT_CONTAINS(
      parse_error(config({"notifications:", "  smtp:", "    host: smtp.example.com", "    from_addr: a@example.com"})),
      "to_addr is required");
  EXPECT_CONTAINS(parse_error(config({"syncoid:", "  compress: lz5"})), "did you mean \"lz4\"?");
  EXPECT_CONTAINS(parse_error(config({"syncoid:", "  source_bwlimit: fast"})), "invalid bandwidth limit");
  EXPECT_CONTAINS(parse_error(config({"syncoid:", "  identifier: \"a b\""})), "invalid syncoid identifier");
  EXPECT_CONTAINS(parse_error(config({"agent:", "  token: abc"})), "jobs[0].agent.url: required key missing");
}

TEST(ConfigValidation, WolRelayAndAgent) {
  const auto cfg = parse_ok(config(
      {"wol_relay:", "  host: relay.example.com", "  ssh_key: /etc/hozo/relay",
       "  command: [etherwake, -i, eth0, \"{mac}\"]", "agent:", "  url: http://192.0.2.10:9999", "  token: t0ken"},
      {"wol_relay:", "  user: pi", "  port: 2022"}));
  const Job& j = cfg.jobs.at(0);
  ASSERT_TRUE(j.wol_relay.has_value());
  EXPECT_EQ(j.wol_relay->host, "relay.example.com");
  EXPECT_EQ(j.wol_relay->user, "pi");  // merged from settings
  EXPECT_EQ(j.wol_relay->port, 2022);
  EXPECT_EQ(j.wol_relay->command.front(), "etherwake");
  ASSERT_TRUE(j.agent.has_value());
  EXPECT_EQ(j.agent->token.reveal(), "t0ken");
  EXPECT_CONTAINS(parse_error(config({"wol_relay:", "  host: r.example.com", "  command: []"})),
                  "jobs[0].wol_relay.command: must not be empty");
  EXPECT_CONTAINS(parse_error(config({}, {"wol_relay:", "  user: pi"})),
                  "jobs[0].wol_relay.host: required key missing");
  const auto bad_host = parse_error(config({"wol_relay:", "  host: \"bad host\""}));
  EXPECT_CONTAINS(bad_host, "jobs[0].wol_relay.host: invalid host");
  EXPECT_EQ(bad_host.find("required"), std::string::npos);
}

// --- secrets --------------------------------------------------------------------------------------

TEST(ConfigSecrets, InlineAndFile) {
  const TempDir dir;
  const auto token = dir.write("ntfy.token", "tk_secretvalue\n");
  const auto pass = dir.write("wol.pass", "01-02-03-04-05-06\r\n");
  const auto cfg = parse_ok(config({fmt::format("wol_password_file: {}", pass.string())},
                                   {"notifications:", fmt::format("  ntfy_token_file: {}", token.string()),
                                    "  pushover_token: abc123", "  pushover_user: u123"}));
  const Job& j = cfg.jobs.at(0);
  EXPECT_EQ(j.notifications.ntfy_token.reveal(), "tk_secretvalue");
  EXPECT_EQ(j.notifications.ntfy_token.origin(), "file " + token.string());
  EXPECT_EQ(j.notifications.pushover_token.reveal(), "abc123");
  EXPECT_EQ(j.notifications.pushover_token.origin(), "inline");
  EXPECT_EQ(j.wol_password.reveal(), "01-02-03-04-05-06");
}

TEST(ConfigSecrets, RelativePathsUseCredentialsDirectory) {
  const TempDir dir;
  dir.write("pushover-token", "abcdef\n");
  dir.write("smtp-pass", "p@ss word\n");
  dir.write("agent", "agent-token\n");
  const ScopedEnv creds("CREDENTIALS_DIRECTORY", dir.path().c_str());
  const auto cfg = parse_ok(
      config({"agent:", "  url: http://192.0.2.10:9999", "  token_file: agent"},
             {"notifications:", "  pushover_token_file: pushover-token", "  smtp:", "    host: smtp.example.com",
              "    password_file: smtp-pass", "    from_addr: a@example.com", "    to_addr: b@example.com"}));
  const Job& j = cfg.jobs.at(0);
  EXPECT_EQ(j.notifications.pushover_token.reveal(), "abcdef");
  EXPECT_EQ(j.notifications.pushover_token.origin(), "credential pushover-token");
  EXPECT_EQ(j.notifications.smtp->password.reveal(), "p@ss word");
  EXPECT_EQ(j.agent->token.reveal(), "agent-token");
}

TEST(ConfigSecrets, ErrorsNameTheKeyButNeverTheValue) {
  const TempDir dir;
  const ScopedEnv creds("CREDENTIALS_DIRECTORY", nullptr);
  const auto missing = parse_error(config({}, {"notifications:", "  ntfy_token_file: /nonexistent/hozo/token"}));
  EXPECT_CONTAINS(missing, "settings.notifications.ntfy_token_file: cannot read secret: /nonexistent/hozo/token");
  EXPECT_CONTAINS(
      parse_error(config({}, {"notifications:", fmt::format("  ntfy_token_file: {}", dir.path().string())})),
      "is not a regular file");
  const auto empty = dir.write("empty", "\n");
  EXPECT_CONTAINS(parse_error(config({}, {"notifications:", fmt::format("  ntfy_token_file: {}", empty.string())})),
                  "is empty");
  const auto two_lines = dir.write("two", "SUPERSECRET1\nSUPERSECRET2\n");
  const auto msg =
      parse_error(config({}, {"notifications:", fmt::format("  ntfy_token_file: {}", two_lines.string())}));
  EXPECT_CONTAINS(msg, "must hold a single line");
  EXPECT_EQ(msg.find("SUPERSECRET"), std::string::npos);
  const auto bad_pass = dir.write("wol", "SUPERSECRET\n");
  const auto wol = parse_error(config({fmt::format("wol_password_file: {}", bad_pass.string())}));
  EXPECT_CONTAINS(wol, "jobs[0].wol_password_file: secret in");
  EXPECT_EQ(wol.find("SUPERSECRET"), std::string::npos);
  const auto inline_bad = parse_error(config({"wol_password: SUPERSECRET"}));
  EXPECT_CONTAINS(inline_bad, "jobs[0].wol_password: invalid SecureOn password");
  EXPECT_EQ(inline_bad.find("SUPERSECRET"), std::string::npos);
  const auto pushover = parse_error(config({"notifications:", "  pushover_user: \"SUPER SECRET\""}));
  EXPECT_EQ(pushover.find("SUPER SECRET"), std::string::npos);
}

TEST(ConfigSecrets, ValueAndFileTogetherIsAnError) {
  EXPECT_CONTAINS(parse_error(config({"notifications:", "  ntfy_token: a", "  ntfy_token_file: /x"})),
                  "\"ntfy_token\" and \"ntfy_token_file\" are both given");
  EXPECT_CONTAINS(parse_error(config({"wol_password: 01:02:03:04:05:06", "wol_password_file: /x"})),
                  "\"wol_password\" and \"wol_password_file\" are both given");
  EXPECT_CONTAINS(parse_error(config({"agent:", "  url: http://192.0.2.1:1", "  token: a", "  token_file: /x"})),
                  "\"token\" and \"token_file\" are both given");
  // settings gives the file, the job the value: the job wins, no error.
  const TempDir dir;
  const auto f = dir.write("t", "from-file\n");
  const auto cfg = parse_ok(config({"notifications:", "  ntfy_token: from-job"},
                                   {"notifications:", fmt::format("  ntfy_token_file: {}", f.string())}));
  EXPECT_EQ(cfg.jobs.at(0).notifications.ntfy_token.reveal(), "from-job");
}

// --- files, paths, robustness ---------------------------------------------------------------------

TEST(ConfigFiles, MissingFileIsAConfigErrorNamingThePath) {
  std::vector<ConfigIssue> issues;
  auto r = load_config("/nonexistent/hozo/hozo.yaml", &issues);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ExitCode::config);
  EXPECT_CONTAINS(r.error().message, "/nonexistent/hozo/hozo.yaml");
  EXPECT_EQ(issues.size(), 1U);
  const TempDir dir;
  EXPECT_EQ(load_config(dir.path()).error().code, ExitCode::config);
}

TEST(ConfigFiles, DefaultPath) {
  const auto p = default_config_path();
  if (::geteuid() == 0) {
    EXPECT_EQ(p, fs::path("/etc/hozo/hozo.yaml"));
  } else {
    const ScopedEnv xdg("XDG_CONFIG_HOME", nullptr);
    const ScopedEnv home("HOME", "/home/tester");
    EXPECT_EQ(default_config_path(), fs::path("/home/tester/.config/hozo/config.yaml"));
  }
}

TEST(ConfigFiles, KnownKeys) {
  const auto keys = known_job_keys();
  for (const auto* k : {"name",
                        "description",
                        "source_dataset",
                        "source",
                        "target_dataset",
                        "datasets",
                        "target_host",
                        "mac_address",
                        "wol",
                        "ssh_user",
                        "ssh_key",
                        "ssh_port",
                        "recursive",
                        "shutdown_after",
                        "retries",
                        "retry_delay",
                        "wol_broadcast",
                        "broadcast_ip",
                        "no_privilege_elevation",
                        "schedule",
                        "backup_device",
                        "disk_spinup_timeout",
                        "ssh_timeout",
                        "wol_port",
                        "wol_interface",
                        "wol_repeat",
                        "wol_password",
                        "wol_password_file",
                        "wol_relay",
                        "known_hosts",
                        "host_key_policy",
                        "ssh_connect_timeout",
                        "syncoid",
                        "shutdown_command",
                        "shutdown_only_if_woken",
                        "host_sharing",
                        "host_lock_timeout",
                        "target_pool_import",
                        "agent",
                        "notifications",
                        "history",
                        "log_keep",
                        "syncoid.compress",
                        "syncoid.extra_args",
                        "notifications.ntfy_token_file",
                        "notifications.smtp.password_file",
                        "wol_relay.command",
                        "agent.token_file",
                        "datasets[].recursive"}) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
  }
}

TEST(ConfigRobustness, HostileInputNeverThrows) {
  std::vector<std::string> inputs{
      std::string(5000, '['),
      std::string(5000, '{'),
      [] {
        std::string s;
        for (int i = 0; i < 3000; ++i) s += std::string(static_cast<std::size_t>(i % 40), ' ') + "- \n";
        return s;
      }(),
      "a: &a [*a, *a]\njobs: *a\n",
      "settings: &s {ssh_port: 22}\njobs:\n  - *s\n  - *s\n",
      "jobs:\n  - name: &n x\n    source_dataset: *n\n    target_dataset: *n\n    target_host: *n\n    mac_address: "
      "*n\n",
      "jobs: *undefined\n",
      "jobs:\n  - name: a\n    ssh_port: 1e400\n    retries: 0x10\n    retry_delay: 99999999999999999999999d\n",
      std::string("\0\x01\x02\xff\xfe jobs: [\0]", 13),
      "\t\tjobs:\n\t- name: a\n",
      "jobs:\n  - !!binary aGVsbG8=\n",
      "%YAML 1.2\n%TAG ! tag:x,2000:\n--- !foo\njobs: !bar []\n",
      "? |\n  multi\n: 1\njobs: []\n",
      "jobs: [{name: a, datasets: [{source: [1], target: {a: b}, recursive: [x]}]}]\n",
      "settings: {notifications: {smtp: [], notify_on: {a: 1}}, syncoid: {exclude: [[1]]}}\njobs: []\n",
      "\xef\xbb\xbfjobs: []\n",
      ",",  // yaml-cpp 0.7 loops forever on this (jbeder/yaml-cpp#1040)
      " ,\n",
      "jobs: []\n---\n,\n",
  };
  for (const auto& in : inputs) {
    std::vector<ConfigIssue> issues;
    EXPECT_NO_THROW({
      auto r = parse_config(in, "fuzz.yaml", &issues);
      if (!r.ok()) {
        EXPECT_EQ(r.error().code, ExitCode::config);
      }
    }) << printable(in.substr(0, 60));
  }
}

// --- issue #16: first hour ------------------------------------------------------------------------

TEST(ConfigFirstHour, DottedNumbersMustBeValidIpv4) {
  const auto with = [](std::string_view key, std::string_view value) {
    return config({fmt::format("{}: {}", key, value)});
  };
  for (const auto* bad : {"192.0.2.300", "192.0.2", "1.2.3.4.5", "256.1.1.1", "01.2.3.4.5"}) {
    auto text = config();
    text.replace(text.find("192.0.2.10"), 10, bad);
    EXPECT_CONTAINS(parse_error(text), "jobs[0].target_host: invalid IPv4 address");
  }
  EXPECT_CONTAINS(parse_error(with("wol_broadcast", "192.0.2.256")), "jobs[0].wol_broadcast: invalid IPv4 address");
  EXPECT_TRUE(parse_config(with("wol_broadcast", "192.0.2.255"), "t").ok());
  EXPECT_TRUE(parse_config(with("wol_broadcast", "1und1.example.com"), "t").ok());  // a host name with digits
}

TEST(ConfigFirstHour, MacsOfNoNetworkCardAreRefused) {
  const auto with_mac = [](const char* mac) {
    auto text = config();
    text.replace(text.find("00:11:22:33:44:55"), 17, mac);
    return text;
  };
  EXPECT_CONTAINS(parse_error(with_mac("ff:ff:ff:ff:ff:ff")), "broadcast address");
  EXPECT_CONTAINS(parse_error(with_mac("FF-FF-FF-FF-FF-FF")), "broadcast address");
  EXPECT_CONTAINS(parse_error(with_mac("01:00:5e:00:00:01")), "multicast");
  EXPECT_CONTAINS(parse_error(with_mac("33:33:00:00:00:01")), "multicast");
  EXPECT_CONTAINS(parse_error(with_mac("00:00:00:00:00:00")), "all zeros");
  EXPECT_TRUE(parse_config(with_mac("02:00:00:00:00:01"), "t").ok());  // locally administered unicast is fine
}

TEST(ConfigFirstHour, AJobWithErrorsIsIsolatedWhenAsked) {
  const std::string text = lines({"jobs:", "  - name: good", "    source: tank/a", "    target_dataset: backup/a",
                                  "    target_host: 192.0.2.10", "    mac_address: \"00:11:22:33:44:55\"",
                                  "  - name: bad", "    source: tank/b", "    target_dataset: backup/b",
                                  "    target_host: 192.0.2.10", "    mac_address: \"00:11:22:33:44\""});
  EXPECT_FALSE(parse_config(text, "t").ok());  // JobErrors::fail (config validate)
  std::vector<ConfigIssue> issues;
  auto r = parse_config(text, "t", &issues, JobErrors::isolate);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->jobs.size(), 1U);
  EXPECT_EQ(r->jobs[0].name, "good");
  ASSERT_EQ(r->broken_jobs.size(), 1U);
  EXPECT_EQ(r->broken_jobs[0].name, "bad");
  ASSERT_EQ(r->broken_jobs[0].issues.size(), 1U);
  EXPECT_EQ(r->broken_jobs[0].issues[0].path, "jobs[1].mac_address");
  EXPECT_EQ(r->broken_jobs[0].issues[0].where.line, 11);
  ASSERT_EQ(issues.size(), 1U);
  EXPECT_EQ(issues[0].job, "bad");
  // An error in settings: is global and still fails.
  EXPECT_FALSE(parse_config("settings:\n  ssh_port: 0\n" + text, "t", nullptr, JobErrors::isolate).ok());
  // A job without a valid name is named by its position.
  auto unnamed = parse_config(config() + lines({"  - name: \"bad name\"", "    source: tank/c"}), "t", nullptr,
                              JobErrors::isolate);
  ASSERT_TRUE(unnamed.ok());
  ASSERT_EQ(unnamed->broken_jobs.size(), 1U);
  EXPECT_EQ(unnamed->broken_jobs[0].name, "jobs[1]");
}

TEST(ConfigFirstHour, DuplicateNamesMakeBothEntriesUnusable) {
  auto r = parse_config(config() + lines({"  - name: data", "    source: tank/x", "    target_dataset: backup/x",
                                          "    target_host: 192.0.2.11", "    wol: false"}),
                        "t", nullptr, JobErrors::isolate);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->jobs.empty());
  EXPECT_EQ(r->broken_jobs.size(), 2U);
}

TEST(ConfigFirstHour, CrossJobWarnings) {
  std::vector<ConfigIssue> issues;
  auto r = parse_config(config() + lines({"  - name: other", "    source: tank/data", "    target_dataset: backup/data",
                                          "    target_host: 192.0.2.10", "    mac_address: \"00:11:22:33:44:66\""}),
                        "t", &issues);
  ASSERT_TRUE(r.ok()) << r.error().message;  // warnings do not fail
  ASSERT_EQ(r->warnings.size(), 2U);
  EXPECT_EQ(r->warnings[0].severity, Severity::warning);
  EXPECT_CONTAINS(r->warnings[0].to_string(), "warning: t:7:5: jobs[1].mac_address: box 192.0.2.10 is woken with MAC");
  EXPECT_CONTAINS(r->warnings[1].message, "like job \"data\"");
  EXPECT_EQ(issues.size(), 2U);
}

TEST(ConfigFirstHour, MergeKeysKeepLinesAndLocalKeysWin) {
  const std::string text = lines({"x-box: &box",                        // 1
                                  "  target_host: 192.0.2.10",          // 2
                                  "  mac_address: \"00:11:22:33:44:55\"",  // 3
                                  "  ssh_port: 2222",                   // 4
                                  "x-bad: &bad",                        // 5
                                  "  retries: 1000",                    // 6
                                  "jobs:",                              // 7
                                  "  - <<: *box",                       // 8
                                  "    name: a",                        // 9
                                  "    source: tank/a",                 // 10
                                  "    target_dataset: backup/a",       // 11
                                  "    ssh_port: 22",                   // 12
                                  "  - <<: [*bad, *box]",               // 13
                                  "    name: b",                        // 14
                                  "    source: tank/b",                 // 15
                                  "    target_dataset: backup/b"});
  std::vector<ConfigIssue> issues;
  auto r = parse_config(text, "m.yaml", &issues, JobErrors::isolate);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Job* a = r->find_job("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->target_host, "192.0.2.10");
  EXPECT_EQ(a->ssh_port, 22);  // the job's own key wins over the merged one
  ASSERT_EQ(r->broken_jobs.size(), 1U);
  ASSERT_EQ(r->broken_jobs[0].issues.size(), 1U);
  EXPECT_EQ(r->broken_jobs[0].issues[0].to_string(), "m.yaml:6:12: jobs[1].retries: \"1000\" is out of range (0..100)");
  EXPECT_CONTAINS(parse_error("jobs:\n  - <<: 5\n    name: a\n"), "a merge key takes a mapping");
  // A quoted "<<" is an ordinary (unknown) key.
  EXPECT_CONTAINS(parse_error(config({"\"<<\": 1"})), "unknown key \"<<\"");
}
