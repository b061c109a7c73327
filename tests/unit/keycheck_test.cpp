#include <gtest/gtest.h>

#include "test_support.hpp"

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "hozo/keycheck.hpp"
#include "hozo/util/fs.hpp"

using namespace hozo;
namespace fs = std::filesystem;

namespace {

using TempDir = hozo::test::TempDir;

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "missing: " << (needle) << "\nin:\n" << (haystack)

bool have_ssh_keygen() { return std::system("command -v ssh-keygen >/dev/null 2>&1") == 0; }

void keygen(const fs::path& file, const std::string& passphrase) {
  const auto cmd = fmt::format("ssh-keygen -q -t ed25519 -N '{}' -f '{}' >/dev/null", passphrase, file.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0);
}

Job job_with(const std::string& key, const fs::path& known_hosts) {
  Job job;
  job.name = "k";
  job.target_host = "192.0.2.10";
  job.ssh_key = key;
  job.known_hosts = known_hosts.string();
  return job;
}

}  // namespace

TEST(KeyCheck, IdentityFileProblems) {
  if (!have_ssh_keygen()) GTEST_SKIP() << "ssh-keygen not installed";
  TempDir tmp;
  keygen(tmp.path() / "plain", "");
  keygen(tmp.path() / "locked", "a passphrase");
  ASSERT_TRUE(write_file_atomic(tmp.path() / "junk", "hello\n"));
  EXPECT_FALSE(identity_file_problem(tmp.path() / "plain").has_value());
  EXPECT_CONTAINS(identity_file_problem(tmp.path() / "missing").value_or(""), "does not exist");
  EXPECT_CONTAINS(identity_file_problem(tmp.path()).value_or(""), "is a directory");
  EXPECT_CONTAINS(identity_file_problem(tmp.path() / "plain.pub").value_or(""), "is a public key");
  EXPECT_CONTAINS(identity_file_problem(tmp.path() / "plain.pub").value_or(""), (tmp.path() / "plain").string());
  EXPECT_CONTAINS(identity_file_problem(tmp.path() / "locked").value_or(""), "protected by a passphrase");
  EXPECT_CONTAINS(identity_file_problem(tmp.path() / "junk").value_or(""), "not a private key");
}

TEST(KeyCheck, KnownHostsEntriesPlainAndHashed) {
  if (!have_ssh_keygen()) GTEST_SKIP() << "ssh-keygen not installed";
  TempDir tmp;
  keygen(tmp.path() / "id", "");
  const auto key = (tmp.path() / "id").string();
  auto pub = read_file(tmp.path() / "id.pub");
  ASSERT_TRUE(pub.ok());
  const auto kh = tmp.path() / "known_hosts";

  auto issues = check_ssh_files(job_with(key, kh));  // no file
  ASSERT_EQ(issues.size(), 1U);
  EXPECT_EQ(issues[0].severity, Severity::warning);
  EXPECT_CONTAINS(issues[0].message, "hozo hostkey k --accept");

  ASSERT_TRUE(write_file_atomic(kh, "192.0.2.99 " + *pub));  // another host only
  issues = check_ssh_files(job_with(key, kh));
  ASSERT_EQ(issues.size(), 1U);
  EXPECT_CONTAINS(issues[0].message, "has no key for 192.0.2.10");

  ASSERT_TRUE(write_file_atomic(kh, "192.0.2.10 " + *pub));
  EXPECT_TRUE(check_ssh_files(job_with(key, kh)).empty());
  ASSERT_EQ(std::system(fmt::format("ssh-keygen -H -f '{}' >/dev/null 2>&1", kh.string()).c_str()), 0);
  EXPECT_TRUE(check_ssh_files(job_with(key, kh)).empty()) << "hashed entries count";

  auto other_port = job_with(key, kh);
  other_port.ssh_port = 2222;  // [192.0.2.10]:2222 is a different entry
  issues = check_ssh_files(other_port);
  ASSERT_EQ(issues.size(), 1U);
  EXPECT_CONTAINS(issues[0].message, "port 2222");

  auto lax = job_with(key, tmp.path() / "nothing");
  lax.host_key_policy = HostKeyPolicy::accept_new;
  EXPECT_TRUE(check_ssh_files(lax).empty());
}
