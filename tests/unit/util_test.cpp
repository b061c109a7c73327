#include <unistd.h>

#include <gtest/gtest.h>

#include "test_support.hpp"

#include "hozo/curl_api.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/shared_library.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/util/time.hpp"

using namespace hozo;

TEST(Fs, ReadFileReadsWholeFilesOfAnySize) {
  hozo::test::TempDir tmp;
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{8191}, std::size_t{8192},
                                 std::size_t{300000}}) {
    std::string data(size, 'x');
    for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>(i * 7 % 256);  // NUL bytes too
    const auto file = tmp.path() / ("f" + std::to_string(size));
    ASSERT_TRUE(write_file_atomic(file, data));
    const auto read = read_file(file);
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read, data) << size;
  }
  // A file whose size stat does not give (procfs) is read to its end.
  const auto status = read_file("/proc/self/status");
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_NE(status->find("VmRSS"), std::string::npos);
}

TEST(Fs, ReadFileNamesTheFileAndTheReason) {
  hozo::test::TempDir tmp;
  const auto missing = read_file(tmp.path() / "missing");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("missing: No such file or directory"), std::string::npos)
      << missing.error().message;
  const auto directory = read_file(tmp.path());
  ASSERT_FALSE(directory);
  EXPECT_NE(directory.error().message.find("Is a directory"), std::string::npos) << directory.error().message;
}

TEST(Strings, ShellQuoteLeavesSafeWordsAlone) { EXPECT_EQ(shell_quote("pool/data@snap-1"), "pool/data@snap-1"); }

TEST(Strings, ShellQuoteEscapesMetacharacters) {
  EXPECT_EQ(shell_quote("a b"), "'a b'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("$(reboot);`x`"), "'$(reboot);`x`'");
  EXPECT_EQ(shell_quote(""), "''");
}

TEST(Strings, DidYouMean) {
  EXPECT_EQ(did_you_mean("mac_adress", {"mac_address", "ssh_user"}), std::optional<std::string>("mac_address"));
  EXPECT_EQ(did_you_mean("zzzzzz", {"mac_address", "ssh_user"}), std::nullopt);
}

TEST(Strings, ParseIntRejectsJunk) {
  EXPECT_EQ(parse_int("42"), 42);
  EXPECT_EQ(parse_int("4x"), std::nullopt);
  EXPECT_EQ(parse_int("-1"), std::nullopt);
  EXPECT_EQ(parse_int("99999999999999999999999"), std::nullopt);
}

TEST(Durations, Forms) {
  EXPECT_EQ(parse_duration("90"), Seconds(90));
  EXPECT_EQ(parse_duration("90s"), Seconds(90));
  EXPECT_EQ(parse_duration("5m"), Seconds(300));
  EXPECT_EQ(parse_duration("6h"), Seconds(6 * 3600));
  EXPECT_EQ(parse_duration("1h30m"), Seconds(5400));
  EXPECT_EQ(parse_duration("1d"), Seconds(86400));
  EXPECT_EQ(parse_duration("5x"), std::nullopt);
  EXPECT_EQ(parse_duration("m"), std::nullopt);
  EXPECT_EQ(parse_duration(""), std::nullopt);
  EXPECT_EQ(parse_duration("-5"), std::nullopt);
}

TEST(Time, Iso8601RoundTrip) {
  const auto t = parse_iso8601_utc("2026-11-24T08:00:05Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(iso8601_utc(*t), "2026-11-24T08:00:05Z");
  EXPECT_EQ(parse_iso8601_utc("2026-13-24T08:00:05Z"), std::nullopt);
}

TEST(SharedLibrary, MissingLibraryOrSymbolIsAnErrorNamingThePackage) {
  auto none = hozo::SharedLibrary::open("libhozo-no-such-library.so.1", "libhozo-nothing1");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, hozo::ExitCode::unavailable);
  EXPECT_NE(none.error().message.find("libhozo-no-such-library.so.1"), std::string::npos) << none.error().message;
  EXPECT_NE(none.error().message.find("install the Debian package libhozo-nothing1"), std::string::npos);

  auto libc = hozo::SharedLibrary::open("libc.so.6", "libc6");
  ASSERT_TRUE(libc.ok()) << libc.error().message;
  decltype(::getpid)* pid = nullptr;
  ASSERT_TRUE(libc->bind(pid, "getpid").ok());
  EXPECT_EQ(pid(), ::getpid());
  decltype(::getpid)* absent = nullptr;
  const auto missing = libc->bind(absent, "hozo_no_such_function");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("hozo_no_such_function"), std::string::npos);
  EXPECT_EQ(absent, nullptr);
}

TEST(SharedLibrary, LibcurlLoadsOnFirstUse) {
  const auto api = hozo::curl::load();
  ASSERT_TRUE(api.ok()) << api.error().message;
  CURL* handle = hozo::curl::easy_init();
  ASSERT_NE(handle, nullptr);
  EXPECT_EQ(hozo::curl::easy_setopt(handle, CURLOPT_TIMEOUT_MS, 1000L), CURLE_OK);
  EXPECT_STREQ(hozo::curl::easy_strerror(CURLE_OK), "No error");
  hozo::curl::easy_cleanup(handle);
}
