#include "hozo/zfs.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "hozo/util/strings.hpp"

namespace hozo {
namespace {

constexpr std::size_t kMaxDatasetName = 255;  // ZFS_MAX_DATASET_NAME_LEN - 1
constexpr std::size_t kMaxShownLine = 200;

bool is_component_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == ':' || c == '-';
}

bool is_letter(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::optional<std::uint64_t> parse_u64(std::string_view s) noexcept {
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::string shown(std::string_view line) {
  if (line.size() > kMaxShownLine) return printable(line.substr(0, kMaxShownLine)) + "...";
  return printable(line);
}

// True when `ds` is `root` or (recursive) one of its descendants; an empty root keeps all.
bool in_scope(std::string_view ds, std::string_view root, Recursive recursive) noexcept {
  if (root.empty() || ds == root) return true;
  return recursive == Recursive::yes && ds.size() > root.size() && ds.starts_with(root) && ds[root.size()] == '/';
}

std::string stderr_summary(std::string_view err) {
  const auto t = trim(err);
  if (t.empty()) return "no error output";
  return shown(t);
}

Result<void> validate_pool_name(std::string_view pool) {
  if (pool.find('/') != std::string_view::npos) return make_error("invalid pool name \"{}\": contains '/'", shown(pool));
  if (auto r = validate_dataset_name(pool); !r) return make_error("invalid pool name: {}", r.error().message);
  return ok();
}

}  // namespace

Result<void> validate_dataset_name(std::string_view name) {
  if (name.empty()) return make_error("invalid dataset name: empty");
  if (name.size() > kMaxDatasetName) {
    return make_error("invalid dataset name \"{}\": longer than {} characters", shown(name), kMaxDatasetName);
  }
  if (name.front() == '-') return make_error("invalid dataset name \"{}\": begins with '-'", shown(name));
  if (name.front() == '/' || name.back() == '/') {
    return make_error("invalid dataset name \"{}\": leading or trailing '/'", shown(name));
  }
  for (const char c : name) {
    if (c == '@' || c == '#') {
      return make_error("invalid dataset name \"{}\": '{}' is not allowed in a dataset name (snapshot or bookmark?)",
                        shown(name), c);
    }
    if (c != '/' && !is_component_char(c)) {
      return make_error("invalid dataset name \"{}\": character \"{}\" is not allowed (only A-Z a-z 0-9 _ . : - and /)",
                        shown(name), printable(std::string_view(&c, 1)));
    }
  }
  if (!is_letter(name.front())) return make_error("invalid dataset name \"{}\": pool name must begin with a letter", name);
  std::size_t start = 0;
  while (start <= name.size()) {
    auto end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    const auto component = name.substr(start, end - start);
    if (component.empty()) return make_error("invalid dataset name \"{}\": empty component", name);
    if (component == "." || component == "..") {
      return make_error("invalid dataset name \"{}\": \"{}\" is not allowed as a component", name, component);
    }
    start = end + 1;
  }
  return ok();
}

std::string pool_of(std::string_view dataset) {
  const auto end = dataset.find_first_of("/@#");
  return std::string(dataset.substr(0, end));
}

std::vector<std::string> snapshot_listing_argv(std::string_view dataset, Recursive recursive) {
  std::vector<std::string> argv{"zfs", "get", "-H", "-p", "-o", "name,property,value"};
  if (recursive == Recursive::yes) {
    argv.emplace_back("-r");
  } else {
    argv.emplace_back("-d");
    argv.emplace_back("1");
  }
  argv.emplace_back("guid,createtxg");
  argv.emplace_back(dataset);
  return argv;
}

Result<SnapshotIndex> parse_snapshot_listing(std::string_view output, std::string_view dataset, Recursive recursive) {
  // One pass over the rows; snapshots are collected as views into `output` and only
  // copied into the index at the end.
  struct Pending {
    std::string_view full;  // "ds@snap"
    std::size_t at = 0;     // position of '@' in full
    std::uint64_t guid = 0;
    std::uint64_t createtxg = 0;
    bool has_guid = false;
    bool has_createtxg = false;
    std::size_t line = 0;  // first line that mentioned it
  };

  const auto rows = static_cast<std::size_t>(std::count(output.begin(), output.end(), '\n')) + 1;
  std::vector<Pending> pending;
  pending.reserve(rows / 2 + 1);
  std::unordered_map<std::string_view, std::size_t> by_name;
  by_name.reserve(rows / 2 + 1);
  std::vector<std::string_view> datasets_seen;

  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < output.size()) {
    auto eol = output.find('\n', pos);
    if (eol == std::string_view::npos) eol = output.size();
    auto line = output.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;

    const auto tab1 = line.find('\t');
    const auto tab2 = tab1 == std::string_view::npos ? tab1 : line.find('\t', tab1 + 1);
    if (tab2 == std::string_view::npos || line.find('\t', tab2 + 1) != std::string_view::npos || tab1 == 0) {
      return make_error("zfs get output line {}: expected NAME<tab>PROPERTY<tab>VALUE: \"{}\"", line_no, shown(line));
    }
    const auto name = line.substr(0, tab1);
    const auto property = line.substr(tab1 + 1, tab2 - tab1 - 1);
    const auto value = line.substr(tab2 + 1);
    const bool is_guid = property == "guid";
    if (!is_guid && property != "createtxg") {
      return make_error("zfs get output line {}: unexpected property \"{}\": \"{}\"", line_no, shown(property),
                        shown(line));
    }

    const auto at = name.find('@');
    if (at == std::string_view::npos) {
      // The dataset's own row (or a bookmark "ds#bm"): not a snapshot, but remember the
      // dataset so that datasets without snapshots still get an (empty) entry.
      if (name.find('#') == std::string_view::npos && in_scope(name, dataset, recursive) &&
          (datasets_seen.empty() || datasets_seen.back() != name)) {
        datasets_seen.push_back(name);
      }
      continue;
    }
    if (at == 0 || at + 1 == name.size()) {
      return make_error("zfs get output line {}: malformed snapshot name: \"{}\"", line_no, shown(line));
    }
    if (!in_scope(name.substr(0, at), dataset, recursive)) continue;

    const auto number = parse_u64(value);
    if (!number) {
      return make_error("zfs get output line {}: {} of {} is not a number (\"{}\"): \"{}\"", line_no, property,
                        shown(name), shown(value), shown(line));
    }

    Pending* entry = nullptr;
    if (!pending.empty() && pending.back().full == name) {
      entry = &pending.back();  // the common case: both properties of a snapshot are adjacent
    } else {
      const auto [it, inserted] = by_name.try_emplace(name, pending.size());
      if (inserted) {
        pending.push_back(Pending{name, at, 0, 0, false, false, line_no});
      }
      entry = &pending[it->second];
    }
    bool& has = is_guid ? entry->has_guid : entry->has_createtxg;
    if (has) {
      return make_error("zfs get output line {}: duplicate {} for {}: \"{}\"", line_no, property, shown(name),
                        shown(line));
    }
    has = true;
    (is_guid ? entry->guid : entry->createtxg) = *number;
  }

  SnapshotIndex index;
  for (const auto ds : datasets_seen) index.try_emplace(std::string(ds));
  std::vector<Snapshot>* current = nullptr;
  std::string_view current_ds;
  for (const auto& p : pending) {
    if (!p.has_guid || !p.has_createtxg) {
      return make_error("zfs get output: snapshot {} (line {}) has no {}", shown(p.full), p.line,
                        p.has_guid ? "createtxg" : "guid");
    }
    const auto ds = p.full.substr(0, p.at);
    if (current == nullptr || ds != current_ds) {
      auto it = index.find(ds);
      if (it == index.end()) it = index.try_emplace(std::string(ds)).first;
      current = &it->second;
      current_ds = ds;
    }
    current->push_back(Snapshot{std::string(ds), std::string(p.full.substr(p.at + 1)), p.guid, p.createtxg});
  }
  for (auto& [ds, snaps] : index) {
    if (!std::is_sorted(snaps.begin(), snaps.end(),
                        [](const Snapshot& a, const Snapshot& b) { return a.createtxg < b.createtxg; })) {
      std::stable_sort(snaps.begin(), snaps.end(),
                       [](const Snapshot& a, const Snapshot& b) { return a.createtxg < b.createtxg; });
    }
  }
  return index;
}

Result<SnapshotListing> list_snapshots(CommandRunner& runner, std::string_view dataset, Recursive recursive,
                                       std::chrono::seconds timeout) {
  if (auto valid = validate_dataset_name(dataset); !valid) return std::move(valid).error();
  auto run = runner.run(snapshot_listing_argv(dataset, recursive), timeout);
  if (!run) {
    return make_error("listing snapshots of {} on {} failed: {}", dataset, runner.where(), run.error().message);
  }
  const CommandOutput& out = *run;
  if (out.exit_status != 0) {
    if (out.err.find("dataset does not exist") != std::string::npos) {
      return SnapshotListing{ListStatus::missing, {}};
    }
    return make_error("listing snapshots of {} on {} failed (zfs exit {}): {}", dataset, runner.where(),
                      out.exit_status, stderr_summary(out.err));
  }
  auto parsed = parse_snapshot_listing(out.out, dataset, recursive);
  if (!parsed) {
    return make_error("listing snapshots of {} on {}: {}", dataset, runner.where(), parsed.error().message);
  }
  SnapshotListing listing{ListStatus::found, std::move(parsed).value()};
  // The dataset exists (zfs exited 0) even if no row for it was parsed.
  listing.snapshots.try_emplace(std::string(dataset));
  return listing;
}

const Snapshot* newest_snapshot(const std::vector<Snapshot>& snapshots) noexcept {
  return snapshots.empty() ? nullptr : &snapshots.back();
}

Result<PoolHealth> zpool_health(CommandRunner& runner, std::string_view pool, std::chrono::seconds timeout) {
  auto health = zpool_health_if_imported(runner, pool, timeout);
  if (!health) return std::move(health).error();
  if (!*health) return make_error("pool {} is not imported on {}", pool, runner.where());
  return std::move(**health);
}

Result<std::optional<PoolHealth>> zpool_health_if_imported(CommandRunner& runner, std::string_view pool,
                                                           std::chrono::seconds timeout) {
  if (auto valid = validate_pool_name(pool); !valid) return std::move(valid).error();
  auto run = runner.run({"zpool", "list", "-H", "-o", "name,health", std::string(pool)}, timeout);
  if (!run) return make_error("zpool list {} on {} failed: {}", pool, runner.where(), run.error().message);
  if (run->exit_status != 0) {
    if (run->err.find("no such pool") != std::string::npos) return std::optional<PoolHealth>();
    return make_error("zpool list {} on {} failed (exit {}): {}", pool, runner.where(), run->exit_status,
                      stderr_summary(run->err));
  }
  for (const auto line : split_lines(run->out)) {
    const auto fields = split(line, '\t');
    if (fields.size() == 2 && fields[0] == pool && !trim(fields[1]).empty()) {
      return std::optional<PoolHealth>(PoolHealth{std::string(pool), std::string(trim(fields[1]))});
    }
  }
  return make_error("zpool list {} on {}: unexpected output \"{}\"", pool, runner.where(), shown(trim(run->out)));
}

Result<bool> pool_imported(CommandRunner& runner, std::string_view pool, std::chrono::seconds timeout) {
  if (auto valid = validate_pool_name(pool); !valid) return std::move(valid).error();
  auto run = runner.run({"zpool", "list", "-H", "-o", "name", std::string(pool)}, timeout);
  if (!run) return make_error("zpool list {} on {} failed: {}", pool, runner.where(), run.error().message);
  if (run->exit_status == 0) return true;
  if (run->err.find("no such pool") != std::string::npos) return false;
  return make_error("zpool list {} on {} failed (exit {}): {}", pool, runner.where(), run->exit_status,
                    stderr_summary(run->err));
}

std::vector<ImportCandidate> parse_import_listing(std::string_view output) {
  std::vector<ImportCandidate> pools;
  std::string* continued = nullptr;  // the label whose paragraph a tab-indented line continues
  for (const auto raw : split_lines(output)) {
    const auto line = trim(raw);
    if (line.empty()) {
      continued = nullptr;
      continue;
    }
    const auto colon = line.find(':');
    const auto label = colon == std::string_view::npos ? std::string_view() : line.substr(0, colon);
    // Labels are right-aligned at the colon (any leading spaces, "action:" at column 0); device
    // trees and the continuation lines of a paragraph are tab-indented.
    const bool is_label = !raw.empty() && raw.front() != '\t' &&
                          (label == "pool" || label == "id" || label == "state" || label == "action" ||
                           label == "status" || label == "see" || label == "config" || label == "comment");
    if (!is_label) {
      if (continued != nullptr && !raw.empty() && raw.front() == '\t') *continued += " " + std::string(line);
      continue;
    }
    const auto value = std::string(trim(line.substr(colon + 1)));
    continued = nullptr;
    if (label == "pool") {
      pools.push_back(ImportCandidate{value, {}, {}, {}});
    } else if (!pools.empty()) {
      auto& p = pools.back();
      if (label == "id") p.id = value;
      if (label == "state") p.state = value;
      if (label == "action") {
        p.action = value;
        continued = &p.action;
      }
    }
  }
  return pools;
}

Result<void> zpool_import(CommandRunner& runner, std::string_view pool, std::chrono::seconds timeout,
                          const std::vector<std::string>& search_dirs) {
  if (auto valid = validate_pool_name(pool); !valid) return std::move(valid).error();
  std::vector<std::string> argv{"zpool", "import"};
  for (const auto& dir : search_dirs) {
    if (dir.empty() || dir.front() != '/' || dir.find_first_of(std::string_view("\0\n\r", 3)) != std::string::npos) {
      return make_error("zpool import: search directory \"{}\" must be an absolute path", printable(dir));
    }
    argv.emplace_back("-d");
    argv.push_back(dir);
  }
  argv.emplace_back(pool);
  auto run = runner.run(argv, timeout);
  if (!run) return make_error("zpool import {} on {} failed: {}", pool, runner.where(), run.error().message);
  if (run->exit_status != 0) {
    return make_error("zpool import {} on {} failed (exit {}): {}", pool, runner.where(), run->exit_status,
                      stderr_summary(run->err));
  }
  return ok();
}

}  // namespace hozo
