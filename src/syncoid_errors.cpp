#include "hozo/syncoid_errors.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include <fmt/format.h>

#include "hozo/util/strings.hpp"

namespace hozo {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// Lower-case fragments of real zfs / ssh / syncoid messages, most specific first.
const std::array<std::pair<SyncCause, std::string_view>, 34> kPatterns{{
    {SyncCause::no_common_snapshot, "has no snapshots matching with"},  // syncoid 2.1.0+
    {SyncCause::no_common_snapshot, "no matching snapshots"},
    {SyncCause::no_common_snapshot, "does not match incremental source"},
    {SyncCause::no_common_snapshot, "incremental source"},  // "... does not exist"
    {SyncCause::target_modified, "has been modified"},  // "destination ... has been modified since most recent snapshot"
    {SyncCause::target_modified, "destination has snapshots"},
    {SyncCause::target_modified, "must specify -f to overwrite"},
    {SyncCause::target_modified, "contains partially-complete state"},
    {SyncCause::out_of_space, "out of space"},
    {SyncCause::out_of_space, "no space left on device"},
    {SyncCause::out_of_space, "quota exceeded"},
    {SyncCause::target_busy, "dataset is busy"},
    {SyncCause::target_busy, "pool or dataset is busy"},
    {SyncCause::target_busy, "device or resource busy"},
    {SyncCause::permission_denied, "permission denied"},
    {SyncCause::permission_denied, "operation not permitted"},
    {SyncCause::permission_denied, "insufficient privileges"},
    {SyncCause::permission_denied, "must be superuser"},
    {SyncCause::permission_denied, "host key verification failed"},
    {SyncCause::dataset_missing, "dataset does not exist"},
    {SyncCause::dataset_missing, "no such pool"},
    {SyncCause::dataset_missing, "dataset no longer exists"},
    {SyncCause::dataset_missing, "no datasets found"},
    {SyncCause::dataset_missing, "could not find any snapshots"},
    {SyncCause::network, "ssh connection echo test failed"},
    {SyncCause::network, "connection refused"},
    {SyncCause::network, "connection timed out"},
    {SyncCause::network, "no route to host"},
    {SyncCause::network, "network is unreachable"},
    {SyncCause::network, "connection reset"},
    {SyncCause::network, "broken pipe"},
    {SyncCause::network, "could not resolve hostname"},
    {SyncCause::network, "timeout, server"},
    {SyncCause::network, "connection closed by"},
}};

std::string clip(std::string_view line) {
  std::string out = printable(trim(line));
  if (out.size() > 300) out = out.substr(0, 297) + "...";
  return out;
}

}  // namespace

std::string_view to_string(SyncCause cause) noexcept {
  switch (cause) {
    case SyncCause::no_common_snapshot: return "no_common_snapshot";
    case SyncCause::target_modified: return "target_modified";
    case SyncCause::target_busy: return "target_busy";
    case SyncCause::out_of_space: return "out_of_space";
    case SyncCause::permission_denied: return "permission_denied";
    case SyncCause::dataset_missing: return "dataset_missing";
    case SyncCause::network: return "network";
    case SyncCause::unknown: break;
  }
  return "unknown";
}

SyncFailure classify_syncoid_output(std::string_view output) {
  SyncFailure f;
  std::string last_warn;
  std::size_t best = kPatterns.size();
  for (const auto line : split_lines(output)) {
    const std::string low = lower(line);
    if (f.critical.empty() && low.find("critical error") != std::string::npos) f.critical = clip(line);
    if (low.starts_with("warn")) last_warn = clip(line);
    for (std::size_t i = 0; i < best; ++i) {
      if (low.find(kPatterns[i].second) != std::string::npos) {
        best = i;
        f.cause = kPatterns[i].first;
        f.evidence = clip(line);
        break;
      }
    }
  }
  if (f.critical.empty()) f.critical = last_warn;
  return f;
}

bool retry_can_help(SyncCause cause) noexcept {
  return cause == SyncCause::unknown || cause == SyncCause::target_busy || cause == SyncCause::network;
}

std::string describe_cause(const SyncFailure& f, const SyncContext& w) {
  const std::string target = fmt::format("{}:{}", w.target_host, w.target);
  switch (f.cause) {
    case SyncCause::no_common_snapshot:
      return fmt::format(
          "no common snapshot between {} and {}: the snapshot the target ends on is gone from the source, so no "
          "incremental send is possible; a full send into a new target dataset is needed: run `hozo jobs reseed {}` "
          "(see hozo(1) RECOVERY)",
          w.source, target, w.job);
    case SyncCause::target_modified:
      return fmt::format(
          "the target {} was modified since the last sync (or has diverged from the source); run `hozo jobs run {} "
          "--force-rollback` to discard its changes (see hozo(1) RECOVERY)",
          target, w.job);
    case SyncCause::target_busy:
      return fmt::format("the target {} is busy (another receive or a mount holds it); run the job again later", target);
    case SyncCause::out_of_space:
      return fmt::format(
          "out of space on the target pool of {}: free space on the box (destroy old snapshots there) or grow the "
          "pool, then run the job again; what was received before is kept",
          target);
    case SyncCause::permission_denied:
      return fmt::format(
          "permission denied: check the SSH key and user for {} and, without root, the `zfs allow` permissions on "
          "both sides (`hozo check {}` shows them)",
          w.target_host, w.job);
    case SyncCause::dataset_missing:
      return fmt::format("a dataset is missing ({} or {}): check the job's datasets and pools on both sides "
                         "(`hozo check {}`)",
                         w.source, target, w.job);
    case SyncCause::network:
      return fmt::format("ssh/network failure talking to {}: check that the box is reachable (`hozo check {} --wake`); "
                         "the next run starts over",
                         w.target_host, w.job);
    case SyncCause::unknown: break;
  }
  return {};
}

std::string describe_restore_cause(const SyncFailure& f, const SyncContext& w) {
  const std::string backup = fmt::format("{}:{}", w.target_host, w.source);
  switch (f.cause) {
    case SyncCause::no_common_snapshot:
      return fmt::format(
          "no common snapshot between the backup {} and the local {}: restore into a new dataset (--to, or the "
          "default name), or overwrite it with --in-place --force-delete (see hozo(1) RECOVERY)",
          backup, w.target);
    case SyncCause::target_modified:
      return fmt::format(
          "the local {} was modified since its newest snapshot: restore into a new dataset (without --in-place), or "
          "roll it back first (zfs rollback) and run the restore again",
          w.target);
    case SyncCause::target_busy:
      return fmt::format("the local {} is busy (another receive or a mount holds it); run the restore again later",
                         w.target);
    case SyncCause::out_of_space:
      return fmt::format(
          "out of space on the local pool of {}: free space there (or restore into another pool with --to), then run "
          "the restore again; the backup on the box is untouched",
          w.target);
    case SyncCause::permission_denied:
      return fmt::format(
          "permission denied: check the SSH key and user for {} and, without root, the `zfs allow` permissions (send "
          "on the box, create,mount,receive here; `hozo check {}` shows them)",
          w.target_host, w.job);
    case SyncCause::dataset_missing:
      return fmt::format("a dataset is missing (the backup {} on the box, or the parent of {} here): check the job's "
                         "target_dataset and `hozo check {}`",
                         backup, w.target, w.job);
    case SyncCause::network:
      return fmt::format("ssh/network failure talking to {}: check that the box is reachable (`hozo check {} --wake`), "
                         "then run the restore again",
                         w.target_host, w.job);
    case SyncCause::unknown: break;
  }
  return {};
}

}  // namespace hozo
