#include "hozo/syncoid_version.hpp"

#include <fstream>
#include <map>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "hozo/process.hpp"
#include "hozo/util/strings.hpp"

namespace hozo {

std::string SyncoidVersion::str() const { return fmt::format("{}.{}.{}", major, minor, patch); }

std::optional<SyncoidVersion> parse_syncoid_version(std::string_view text) {
  constexpr std::string_view kKey = "version ";
  for (std::size_t at = text.find(kKey); at != std::string_view::npos; at = text.find(kKey, at + 1)) {
    std::size_t i = at + kKey.size();
    int parts[3] = {0, 0, 0};
    int n = 0;
    while (n < 3) {
      const std::size_t start = i;
      long long value = 0;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - start < 6) value = value * 10 + (text[i++] - '0');
      if (i == start) break;
      parts[n++] = static_cast<int>(value);
      if (i < text.size() && text[i] == '.' && n < 3) {
        ++i;
        continue;
      }
      break;
    }
    if (n >= 2) return SyncoidVersion{parts[0], parts[1], parts[2]};
  }
  return std::nullopt;
}

std::optional<SyncoidVersion> parse_syncoid_source_version(std::string_view head) {
  if (!head.starts_with("#!") || head.substr(0, head.find('\n')).find("perl") == std::string_view::npos) {
    return std::nullopt;
  }
  // Each release sets it near the top: `$::VERSION = '2.1.0';` (2.1.0, 2.2.0 and 2.3.0 alike).
  constexpr std::string_view kKey = "$::VERSION = '";
  const auto at = head.find(kKey);
  if (at == std::string_view::npos) return std::nullopt;
  const auto end = head.find('\'', at + kKey.size());
  if (end == std::string_view::npos) return std::nullopt;
  const std::string_view number = head.substr(at + kKey.size(), end - at - kKey.size());
  if (number.empty() || number.find_first_not_of("0123456789.") != std::string_view::npos) return std::nullopt;
  return parse_syncoid_version(fmt::format("version {}", number));
}

namespace {

/// The first bytes of the program file (where syncoid sets its version), or "" when unreadable.
std::string program_head(const std::filesystem::path& program) {
  std::ifstream in(program, std::ios::binary);
  std::string head(4096, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return head;
}

}  // namespace

namespace {

/// `PROGRAM --version`, parsed.
Result<SyncoidVersion> run_version(const std::string& program, std::chrono::seconds timeout) {
  ProcessOptions p;
  p.argv = {program, "--version"};
  p.timeout = std::chrono::duration_cast<Millis>(timeout);
  p.capture_limit = 64 * 1024;
  auto result = run_process(p);
  if (!result) return std::move(result).error();
  if (result->timed_out || result->term_signal != 0) {
    return make_error(ExitCode::unavailable, "{} --version {}", program, describe_termination(*result, p.timeout));
  }
  auto version = parse_syncoid_version(result->out + "\n" + result->err);
  if (!version) {
    const auto lines = split_lines(result->out.empty() ? result->err : result->out);
    return make_error(ExitCode::unavailable, "{} --version printed no version (exit {}: \"{}\")", program,
                      result->exit_code, lines.empty() ? std::string() : printable(trim(lines.front())));
  }
  return *version;
}

}  // namespace

Result<SyncoidVersion> detect_syncoid_version(const std::filesystem::path& program, std::chrono::seconds timeout) {
  static std::mutex mutex;
  static std::map<std::string, SyncoidVersion> cache;
  const std::string key = program.string();
  {
    std::lock_guard lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  // Reading the version off the script is free; `syncoid --version` starts perl and loads every
  // module syncoid uses (~50 ms, a tenth of hozo's whole overhead on a no-op run).
  const auto from_source = parse_syncoid_source_version(program_head(program));
  auto version = from_source ? Result<SyncoidVersion>(*from_source) : run_version(key, timeout);
  if (!version) return version;
  std::lock_guard lock(mutex);
  cache[key] = *version;
  return version;
}

bool syncoid_needs_start_spacing(const SyncoidVersion& v) { return v < kSyncoid220; }

bool syncoid_has_exclude_datasets(const SyncoidVersion& v) { return v >= kSyncoid230; }

bool syncoid_skips_missing_source(const SyncoidVersion& v) { return v < kSyncoid220; }

std::string_view syncoid_send_option_letters(const SyncoidVersion& v) {
  // 2.1.0/2.2.0: getoptionsline(\@sendoptions, ('D','L','P','R','c','e','h','p','v','w'));
  // 2.3.0:       getoptionsline(\@sendoptions, ('L','P','V','R','X','b','c','e','h','p','s','v','w'));
  return v >= kSyncoid230 ? std::string_view("LPVRXbcehpsvw") : std::string_view("DLPRcehpvw");
}

std::string_view syncoid_valued_option_letters(const SyncoidVersion& v) {
  // parsespecialoptions(): 'o' and 'x' take a value; 2.3.0 adds 'X' (zfs send -X excludes).
  return v >= kSyncoid230 ? std::string_view("oxX") : std::string_view("ox");
}

bool syncoid_has_compress(const SyncoidVersion& v, std::string_view method) {
  if (method == "zstdmt-fast" || method == "zstdmt-slow") return v >= kSyncoid230;
  static constexpr std::string_view kAll[] = {"gzip", "pigz-fast", "pigz-slow", "zstd-fast", "zstd-slow",
                                              "lz4",  "xz",        "lzo",       "default",   "none"};
  for (const auto m : kAll) {
    if (m == method) return true;
  }
  return false;
}

int syncoid_effective_exit(const SyncoidVersion& v, int exit_code, std::string_view stdout_tail,
                           std::string_view source) {
  if (exit_code != 0 || !syncoid_skips_missing_source(v) || source.empty()) return exit_code;
  const std::string line = fmt::format("Skipping dataset (dataset no longer exists): {}...", source);
  for (const auto l : split_lines(stdout_tail)) {
    if (trim(l).ends_with(line)) return 2;
  }
  return exit_code;
}

}  // namespace hozo
