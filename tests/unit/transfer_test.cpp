// The transfer figures (transfer.hpp) against real syncoid output of 2.1.0, 2.2.0 and 2.3.0,
// captured in the lab by tests/unit/fixtures/syncoid/capture.sh (see tests/unit/fixtures/README.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "hozo/transfer.hpp"
#include "hozo/util/strings.hpp"

using namespace hozo;

namespace {

const std::filesystem::path kFixtures = std::filesystem::path(HOZO_SOURCE_DIR) / "tests/unit/fixtures/syncoid";

std::vector<std::string> lines_of(const std::filesystem::path& p) {
  std::ifstream in(p);
  EXPECT_TRUE(in.good()) << p;
  std::vector<std::string> out;
  // hozo's line reader splits at \n and \r alike; so does this.
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  for (const auto l : split_lines(text)) {
    for (const auto piece : split(l, '\r')) out.emplace_back(piece);
  }
  return out;
}

using Clock = std::chrono::steady_clock;

/// Feeds a captured run: each announcement on stdout, then stderr's pv counts up to the next one
/// (a fast send gives pv's single final count; the files lose the interleaving of the two pipes).
TransferMeter replay(const std::string& name, int* announcements = nullptr) {
  const auto out = lines_of(kFixtures / (name + ".stdout"));
  const auto err = lines_of(kFixtures / (name + ".stderr"));
  std::vector<std::string> counts;
  for (const auto& l : err) {
    if (parse_pv_bytes(l)) counts.push_back(l);
  }
  TransferMeter m;
  auto t = Clock::time_point{} + std::chrono::seconds(100);
  std::size_t next = 0;
  int n = 0;
  for (const auto& l : out) {
    if (!m.feed(l, t)) continue;
    ++n;
    t += std::chrono::seconds(1);
    if (next < counts.size()) {
      EXPECT_TRUE(m.feed(counts[next++], t));
    }
  }
  for (; next < counts.size(); ++next) m.feed(counts[next], t);
  for (const auto& l : err) {
    if (!parse_pv_bytes(l)) {
      EXPECT_FALSE(m.feed(l, t)) << l;  // the rest of stderr (warnings): no figure
    }
  }
  if (announcements != nullptr) *announcements = n;
  return m;
}

}  // namespace

TEST(Transfer, SyncoidSizes) {
  EXPECT_EQ(parse_syncoid_size("4 KB"), 4096);
  EXPECT_EQ(parse_syncoid_size("3.0 MB"), 3145728);
  EXPECT_EQ(parse_syncoid_size("1.2 MB"), 1258291);
  EXPECT_EQ(parse_syncoid_size("2.5 GB"), 2684354560LL);
  EXPECT_EQ(parse_syncoid_size("0 KB"), 0);
  EXPECT_FALSE(parse_syncoid_size("UNKNOWN"));
  EXPECT_FALSE(parse_syncoid_size(""));
  EXPECT_FALSE(parse_syncoid_size("3.0 XB"));
  EXPECT_FALSE(parse_syncoid_size("MB"));
}

TEST(Transfer, AnnouncementsOfEveryRelease) {
  const auto a = parse_send_announcement(
      "INFO: Sending oldest full snapshot hzsrc/cap210@syncoid_vm_2026-12-01:23:34:54-GMT00:00 (~ 3.0 MB) to new target "
      "filesystem:");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->dataset, "hzsrc/cap210");
  EXPECT_EQ(a->estimated_bytes, 3145728);
  const auto b = parse_send_announcement(
      "INFO: Sending incremental hzsrc/cap230@syncoid_vm_2026-12-01:23:35:13-GMT00:00 ... "
      "syncoid_vm_2026-12-01:23:35:16-GMT00:00 to root@10.231.0.2:hztgt/backup/cap230 (~ 1.0 MB):");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->dataset, "hzsrc/cap230");
  EXPECT_EQ(b->estimated_bytes, 1048576);
  const auto c = parse_send_announcement(
      "INFO: Updating new target filesystem with incremental hzsrc/d@a ... syncoid_b (~ UNKNOWN):");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->dataset, "hzsrc/d");
  EXPECT_EQ(c->estimated_bytes, -1);
  // Bookmarks, a resumed receive, --no-stream, 2.3.0's host-qualified names.
  EXPECT_EQ(parse_send_announcement("Sending incremental tank/d#bm ... snap (~ 4 KB):")->dataset, "tank/d");
  const auto r = parse_send_announcement("Resuming interrupted zfs send/receive from tank/d to backup/d (~ 3.1 MB remaining):");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dataset, "tank/d");
  EXPECT_EQ(r->estimated_bytes, 3250586);
  EXPECT_EQ(parse_send_announcement(
                "INFO: --no-stream selected; sending newest full snapshot src:tank/d@s to new target filesystem "
                "u@h:b/d: (~ 42 KB)")
                ->estimated_bytes,
            43008);
  // Other lines are not announcements.
  EXPECT_FALSE(parse_send_announcement("WARN: ZFS resume feature not available on source and target machine"));
  EXPECT_FALSE(parse_send_announcement("NEWEST SNAPSHOT: syncoid_x"));
  EXPECT_FALSE(parse_send_announcement("Sending incremental without a size"));
}

TEST(Transfer, PvCounts) {
  EXPECT_EQ(parse_pv_bytes("3162920"), 3162920);
  EXPECT_EQ(parse_pv_bytes("1.0012 3162920"), 3162920);  // -t in front
  EXPECT_EQ(parse_pv_bytes("1.91MiB 0:00:01 [1.76MiB/s] [=====>   ] 66% ETA 0:00:00"), 2002780);
  EXPECT_EQ(parse_pv_bytes("512 B 0:00:00 [ 0 B/s] [<=>  ]"), 512);
  EXPECT_EQ(parse_pv_bytes("2.86MiB"), 2998927);
  EXPECT_FALSE(parse_pv_bytes(""));
  EXPECT_FALSE(parse_pv_bytes("1.5"));
  EXPECT_FALSE(parse_pv_bytes("-3"));
  EXPECT_FALSE(parse_pv_bytes("3 MiB of data were lost"));
  EXPECT_FALSE(parse_pv_bytes("WARNING: ZFS resume feature not available"));
  EXPECT_FALSE(parse_pv_bytes("CRITICAL ERROR: 12 failed"));
}

class TransferFixtures : public ::testing::TestWithParam<std::string> {};

TEST_P(TransferFixtures, FullSendCountedByPv) {
  const std::string v = GetParam();
  int n = 0;
  const auto m = replay(v + "-full-pv", &n);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(m.source(), BytesSource::pv);
  EXPECT_EQ(m.bytes(), 3162920);           // the stream of a 3 MiB file, as pv counted it
  EXPECT_EQ(m.estimated_bytes(), 3145728);  // "(~ 3.0 MB)"
  const std::string ds = "hzsrc/cap" + std::string{v[0], v[2], v[4]};
  EXPECT_EQ(m.dataset(), ds);
}

TEST_P(TransferFixtures, IncrementalSendCountedByPv) {
  const std::string v = GetParam();
  const auto m = replay(v + "-incr-pv");
  EXPECT_EQ(m.source(), BytesSource::pv);
  EXPECT_EQ(m.bytes(), 1060128);
  EXPECT_EQ(m.estimated_bytes(), 1048576);
}

TEST_P(TransferFixtures, NoEstimateTwoSends) {
  const std::string v = GetParam();
  int n = 0;
  const auto m = replay(v + "-full-unknown", &n);
  EXPECT_EQ(n, 2);  // the oldest snapshot in full, then the incremental to the new sync snapshot
  EXPECT_EQ(m.sends(), 2);
  EXPECT_EQ(m.source(), BytesSource::pv);
  EXPECT_EQ(m.bytes(), 4215192 + 1560);
  EXPECT_EQ(m.estimated_bytes(), -1);
}

TEST_P(TransferFixtures, PvDefaultOptionsDrawNothingIntoAPipe) {
  const std::string v = GetParam();
  const auto m = replay(v + "-full-defaultpv");
  EXPECT_FALSE(m.pv_seen());
  EXPECT_EQ(m.source(), BytesSource::none);  // the lab has no estimate either
  EXPECT_EQ(m.bytes(), 0);
}

INSTANTIATE_TEST_SUITE_P(Syncoid, TransferFixtures, ::testing::Values("2.1.0", "2.2.0", "2.3.0"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string s = param_info.param;
                           std::erase(s, '.');
                           return "v" + s;
                         });

TEST(TransferMeter, ProgressRateEtaAndSeveralSends) {
  TransferMeter m;
  const auto t0 = Clock::time_point{} + std::chrono::seconds(10);
  EXPECT_TRUE(m.feed("Sending incremental tank/a@x ... y (~ 10.0 MB):", t0));
  EXPECT_EQ(m.current_total(), 10485760);
  EXPECT_EQ(m.eta_seconds(), -1.0);  // no rate yet
  EXPECT_TRUE(m.feed("2097152", t0 + std::chrono::seconds(1)));
  EXPECT_TRUE(m.feed("4194304", t0 + std::chrono::seconds(2)));
  EXPECT_DOUBLE_EQ(m.rate(), 2097152.0);
  EXPECT_DOUBLE_EQ(m.eta_seconds(), 3.0);
  EXPECT_EQ(m.current_done(), 4194304);
  EXPECT_TRUE(m.feed("10485760", t0 + std::chrono::seconds(5)));
  EXPECT_DOUBLE_EQ(m.eta_seconds(), 0.0);
  // The next dataset of a recursive pair.
  EXPECT_TRUE(m.feed("Sending incremental tank/a/child@x ... y (~ 4 KB):", t0 + std::chrono::seconds(6)));
  EXPECT_EQ(m.dataset(), "tank/a/child");
  EXPECT_EQ(m.current_done(), 0);
  EXPECT_TRUE(m.feed("4200", t0 + std::chrono::seconds(7)));
  EXPECT_EQ(m.bytes(), 10485760 + 4200);
  EXPECT_EQ(m.estimated_bytes(), 10485760 + 4096);
  // A count below the last one without an announcement: another pv (e.g. a resumed send).
  EXPECT_TRUE(m.feed("100", t0 + std::chrono::seconds(8)));
  EXPECT_EQ(m.bytes(), 10485760 + 4200 + 100);
  EXPECT_EQ(m.current_total(), -1);
  EXPECT_FALSE(m.feed("cannot receive: failed", t0 + std::chrono::seconds(9)));
}

TEST(TransferMeter, EstimateOnlyWithoutPv) {
  TransferMeter m;
  const auto t = Clock::time_point{};
  m.feed("INFO: Sending oldest full snapshot tank/a@x (~ 1.0 MB) to new target filesystem:", t);
  m.feed("INFO: Updating new target filesystem with incremental tank/a@x ... y (~ 4 KB):", t);
  EXPECT_EQ(m.source(), BytesSource::estimate);
  EXPECT_EQ(m.bytes(), 1048576 + 4096);
  EXPECT_EQ(to_string(m.source()), "estimate");
  EXPECT_EQ(format_bytes(m.bytes()), "1.0 MiB");
  EXPECT_EQ(format_bytes(-1), "?");
  EXPECT_EQ(format_bytes(512), "512 B");
}
