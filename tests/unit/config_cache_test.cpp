// The display cache (config_cache.hpp): what `jobs list` and `status` read instead of the YAML.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "hozo/config.hpp"
#include "hozo/config_cache.hpp"
#include "hozo/config_json.hpp"
#include "hozo/util/fs.hpp"
#include "test_support.hpp"

namespace hozo {
namespace {

using TempDir = test::TempDir;

/// A config that sets nearly every key away from its default, with a broken job and a warning.
std::string rich_config(const std::filesystem::path& token_file) {
  return fmt::format(R"(settings:
  ssh_user: backup
  history: 7
  log_keep: 3
  syncoid:
    compress: zstd-fast
    timeout: 2h
    exclude: [tmp, cache]
    sendoptions: w
    recvoptions: u
    extra_args: [--no-resume]
  notifications:
    notify_on: [failure]
    ntfy_topic: hozo-test
    ntfy_token_file: {}
    healthchecks_url: https://hc.example.com/ping/1234
    smtp:
      host: smtp.example.com
      port: 465
      user: mailer
      password: inline-smtp-secret
      from_addr: a@example.com
      to_addr: [b@example.com, c@example.com]
serve:
  listen: 127.0.0.1:8123
  secure_cookies: true
  session_lifetime: 1h
  metrics_textfile: /var/lib/node_exporter/hozo.prom
jobs:
  - name: photos
    description: "Photos\nand more"
    datasets:
      - source: tank/photos
        target: backup/photos
      - source: tank/raw
        target: backup/raw
        recursive: false
    target_host: 192.0.2.10
    ssh_port: 2222
    ssh_key: /etc/hozo/id_ed25519
    known_hosts: /etc/hozo/known_hosts
    host_key_policy: accept-new
    ssh_timeout: 300
    mac_address: "00-11-22-33-44-55"
    wol_broadcast: 192.0.2.255
    wol_port: 7
    wol_repeat: 5
    wol_password: "01:02:03:04:05:06"
    wol_relay:
      host: 198.51.100.7
      user: pi
      command: [etherwake, "{{mac}}"]
    retries: 1
    retry_delay: 5m
    shutdown_command: poweroff
    hold_snapshots: false
    host_sharing: wait
    host_lock_timeout: 10m
    target_pool_import_dirs: [/dev/disk/by-id]
    schedule: "daily 02:00"
    overdue_after: 3d
    backup_device: /dev/disk/by-id/usb-Example_Disk_0001-0:0
    disk_spinup_timeout: 2m
    ssh_connect_timeout: 20
    wol_interface: eth1
    no_privilege_elevation: true
    shutdown_only_if_woken: false
    target_pool_import: false
    agent:
      url: http://192.0.2.10:9999
      token_file: {}
    syncoid:
      path: /usr/sbin/syncoid
      source_bwlimit: 20M
      target_bwlimit: 10M
      identifier: offsite
      no_sync_snap: true
      create_bookmark: true
    notifications:
      ntfy_server: https://ntfy.example.com
      webhook_url: https://hooks.example.com/hozo/abc
      timeout: 30
  - name: same-box
    source: tank/other
    target_dataset: backup/raw
    target_host: 192.0.2.10
    mac_address: "00:11:22:33:44:66"
    shutdown_after: false
    schedule: ""
  - name: broken
    source: tank/b
    target_dataset: backup/b
    target_host: 192.0.2.11
    mac_address: "zz:zz"
)",
                     token_file.string(), token_file.string());
}

/// A job as `jobs show --json` prints it, secrets left out (the cache has none).
nlohmann::ordered_json without_secrets(const Job& job) {
  auto j = job_to_json(job);
  j["wol_password"] = nullptr;
  j["notifications"]["ntfy_token"] = nullptr;
  j["notifications"]["pushover_token"] = nullptr;
  j["notifications"]["pushover_user"] = nullptr;
  if (j["notifications"]["smtp"].is_object()) j["notifications"]["smtp"]["password"] = nullptr;
  if (j["agent"].is_object()) j["agent"]["token"] = nullptr;
  return j;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Sets the file's modification time `seconds` into the past (a changed stamp without waiting).
void age_file(const std::filesystem::path& p, int seconds) {
  std::filesystem::last_write_time(p, std::filesystem::last_write_time(p) - std::chrono::seconds(seconds));
}

struct CacheFixture : ::testing::Test {
  TempDir dir{"hozo-config-cache"};
  std::filesystem::path token = dir.write("ntfy.token", "tk_secret_from_file_0123456789\n");
  std::filesystem::path yaml = dir.write("hozo.yaml", rich_config(token));
  std::filesystem::path cache = config_cache_path(dir.path() / "state" / "state.json");

  void SetUp() override { std::filesystem::create_directories(cache.parent_path()); }

  Config load() {
    auto r = load_config_for_display(yaml, cache);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : Config{};
  }
};

TEST_F(CacheFixture, SecondLoadComesFromTheCacheAndEqualsTheParse) {
  const auto parsed = load_config(yaml, nullptr, JobErrors::isolate);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const Config first = load();
  EXPECT_EQ(first.source, ConfigSource::file);
  ASSERT_TRUE(std::filesystem::exists(cache));
  const Config second = load();
  EXPECT_EQ(second.source, ConfigSource::display_cache);

  ASSERT_EQ(second.jobs.size(), parsed->jobs.size());
  for (std::size_t i = 0; i < parsed->jobs.size(); ++i) {
    EXPECT_EQ(without_secrets(second.jobs[i]).dump(2), without_secrets(parsed->jobs[i]).dump(2));
    EXPECT_EQ(second.jobs[i].where.line, parsed->jobs[i].where.line);
    EXPECT_EQ(second.jobs[i].index, parsed->jobs[i].index);
  }
  EXPECT_EQ(second.path, parsed->path);
  EXPECT_EQ(second.history_limit, 7U);
  EXPECT_EQ(second.log_keep, 3U);
  EXPECT_EQ(second.serve.listen, "127.0.0.1:8123");
  EXPECT_TRUE(second.serve.secure_cookies);
  EXPECT_EQ(second.serve.session_lifetime, std::chrono::hours(1));
  EXPECT_EQ(second.inputs, parsed->inputs);
  ASSERT_EQ(second.inputs.size(), 1U);
  EXPECT_EQ(second.inputs[0], token);

  // The broken job and the warnings come back as they were found, with their positions.
  ASSERT_EQ(parsed->broken_jobs.size(), 1U);
  ASSERT_EQ(second.broken_jobs.size(), 1U);
  EXPECT_EQ(second.broken_jobs[0].name, "broken");
  ASSERT_EQ(second.broken_jobs[0].issues.size(), parsed->broken_jobs[0].issues.size());
  EXPECT_EQ(second.broken_jobs[0].issues[0].to_string(), parsed->broken_jobs[0].issues[0].to_string());
  ASSERT_FALSE(parsed->warnings.empty());  // two jobs writing one target
  ASSERT_EQ(second.warnings.size(), parsed->warnings.size());
  for (std::size_t i = 0; i < parsed->warnings.size(); ++i) {
    EXPECT_EQ(second.warnings[i].to_string(), parsed->warnings[i].to_string());
  }
}

using test::debug_log_of;

TEST_F(CacheFixture, TheFastReaderReadsTheCacheAndTheFullReaderWhatItDeclines) {
  const Config first = load();
  Config fast;
  EXPECT_EQ(debug_log_of([&] { fast = load(); }).find("full JSON reader"), std::string::npos);
  EXPECT_EQ(fast.source, ConfigSource::display_cache);

  // The same content reformatted (the key's text differs) or with a key the fast reader does not
  // know: read by nlohmann, with the same result.
  auto cached = nlohmann::json::parse(slurp(cache));
  cached["config"]["jobs"][0]["a_new_key"] = 1;
  ASSERT_TRUE(write_file_atomic(cache, cached.dump(2)));
  Config full;
  EXPECT_NE(debug_log_of([&] { full = load(); }).find("full JSON reader"), std::string::npos);
  EXPECT_EQ(full.source, ConfigSource::display_cache);
  ASSERT_EQ(full.jobs.size(), fast.jobs.size());
  for (std::size_t i = 0; i < fast.jobs.size(); ++i) {
    EXPECT_EQ(without_secrets(full.jobs[i]).dump(2), without_secrets(fast.jobs[i]).dump(2));
  }
  EXPECT_EQ(full.warnings.size(), fast.warnings.size());
  EXPECT_EQ(full.broken_jobs.size(), fast.broken_jobs.size());

  // A null where nlohmann's value() wants a string: neither reader takes the cache.
  cached = nlohmann::json::parse(slurp(cache));
  cached["config"]["jobs"][0]["name"] = nullptr;
  ASSERT_TRUE(write_file_atomic(cache, cached.dump()));
  EXPECT_EQ(load().source, ConfigSource::file);
  EXPECT_EQ(load().source, ConfigSource::display_cache);  // written again by that parse

  // A changed input is seen by the fast reader: stale, parsed again.
  age_file(token, 100);
  EXPECT_EQ(load().source, ConfigSource::file);
}

TEST_F(CacheFixture, HoldsNoSecret) {
  load();
  const std::string bytes = slurp(cache);
  EXPECT_EQ(bytes.find("tk_secret_from_file"), std::string::npos);
  EXPECT_EQ(bytes.find("inline-smtp-secret"), std::string::npos);
  EXPECT_EQ(bytes.find("01:02:03:04:05:06"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat(cache.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);

  const Config cached = load();
  ASSERT_EQ(cached.source, ConfigSource::display_cache);
  const Job& photos = cached.jobs.at(0);
  EXPECT_TRUE(photos.wol_password.empty());
  EXPECT_TRUE(photos.notifications.ntfy_token.empty());
  ASSERT_TRUE(photos.notifications.smtp.has_value());
  EXPECT_TRUE(photos.notifications.smtp->password.empty());
  EXPECT_EQ(photos.notifications.smtp->host, "smtp.example.com");  // the rest is there
}

TEST_F(CacheFixture, AnyChangeOfTheConfigIsParsedAgain) {
  load();
  ASSERT_EQ(load().source, ConfigSource::display_cache);
  // One byte more (a comment) is another config: parsed, and the cache rewritten for it.
  std::ofstream(yaml, std::ios::app) << "# edited\n";
  EXPECT_EQ(load().source, ConfigSource::file);
  EXPECT_EQ(load().source, ConfigSource::display_cache);
  // A changed value of the same length is caught by the hash, not the size.
  auto text = slurp(yaml);
  const auto at = text.find("history: 7");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 10, "history: 8");
  std::ofstream(yaml, std::ios::binary | std::ios::trunc) << text;
  const Config edited = load();
  EXPECT_EQ(edited.source, ConfigSource::file);
  EXPECT_EQ(edited.history_limit, 8U);
}

TEST_F(CacheFixture, AChangedOrRemovedSecretFileIsParsedAgain) {
  load();
  ASSERT_EQ(load().source, ConfigSource::display_cache);
  age_file(token, 10);  // touched
  EXPECT_EQ(load().source, ConfigSource::file);
  ASSERT_EQ(load().source, ConfigSource::display_cache);
  // Removed: the settings' notifications fail, which is an error of the whole file, as without the cache.
  std::filesystem::remove(token);
  auto r = load_config_for_display(yaml, cache);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cannot read secret"), std::string::npos) << r.error().message;
}

TEST_F(CacheFixture, AnotherHomeIsParsedAgain) {
  load();
  ASSERT_EQ(load().source, ConfigSource::display_cache);
  const test::ScopedEnv home("HOME", dir.path().c_str());
  EXPECT_EQ(load().source, ConfigSource::file);
}

TEST_F(CacheFixture, ADamagedCacheIsParsedAgainAndRewritten) {
  load();
  const std::string good = slurp(cache);
  for (const std::string& bad : {std::string(), std::string("not cbor at all"), good.substr(0, good.size() / 2),
                                std::string("\xa1\x63key\x01", 6)}) {
    std::ofstream(cache, std::ios::binary | std::ios::trunc) << bad;
    const Config c = load();
    EXPECT_EQ(c.source, ConfigSource::file);
    EXPECT_EQ(c.jobs.size(), 2U);
    EXPECT_EQ(load().source, ConfigSource::display_cache);
  }
}

TEST_F(CacheFixture, NoDirectoryNoCache) {
  const auto nowhere = dir.path() / "absent" / "config-cache.json";
  auto r = load_config_for_display(yaml, nowhere);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->source, ConfigSource::file);
  EXPECT_FALSE(std::filesystem::exists(nowhere.parent_path()));
}

TEST_F(CacheFixture, ErrorsAreWordedAsWithoutTheCache) {
  const auto missing = dir.path() / "nope.yaml";
  auto a = load_config_for_display(missing, cache);
  auto b = load_config(missing, nullptr, JobErrors::isolate);
  ASSERT_FALSE(a.ok());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(a.error().message, b.error().message);
  EXPECT_EQ(a.error().code, ExitCode::config);
  const auto broken = dir.write("broken.yaml", "settings: [\n");
  auto c = load_config_for_display(broken, cache);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message, load_config(broken, nullptr, JobErrors::isolate).error().message);
  EXPECT_FALSE(std::filesystem::exists(cache));  // nothing cached for a file that does not load
}

TEST(ConfigCache, TheExampleConfigRoundTrips) {
  TempDir dir{"hozo-config-cache"};
  const auto yaml = dir.write("hozo.yaml", example_config());
  const auto cache = dir.path() / "config-cache.json";
  const auto parsed = load_config(yaml, nullptr, JobErrors::isolate);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_TRUE(load_config_for_display(yaml, cache).ok());
  const auto cached = load_config_for_display(yaml, cache);
  ASSERT_TRUE(cached.ok());
  ASSERT_EQ(cached->source, ConfigSource::display_cache);
  ASSERT_EQ(cached->jobs.size(), parsed->jobs.size());
  for (std::size_t i = 0; i < parsed->jobs.size(); ++i) {
    EXPECT_EQ(without_secrets(cached->jobs[i]).dump(2), without_secrets(parsed->jobs[i]).dump(2));
  }
}

}  // namespace
}  // namespace hozo
