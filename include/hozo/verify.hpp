#pragma once
// Verification after a sync: for every replicated dataset, the newest snapshot on the source
// must exist on the target with the same GUID (same name and different GUID = different data).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "hozo/command.hpp"
#include "hozo/config.hpp"
#include "hozo/util/result.hpp"

namespace hozo {

/// The check of one source dataset against its target counterpart.
struct DatasetCheck {
  std::string source_dataset;
  std::string target_dataset;
  std::string source_snapshot;  ///< newest on the source (part after '@'); empty if none
  std::uint64_t source_guid = 0;
  std::string target_snapshot;  ///< newest on the target (part after '@'); empty if none
  std::uint64_t target_guid = 0;  ///< guid of target_snapshot
  bool match = false;             ///< source_snapshot exists on the target with source_guid
  std::size_t target_snapshot_count = 0;
  std::string message;  ///< one line for people: what matched or what is wrong
};

/// The outcome of verifying one dataset pair (or a whole job).
struct VerifyReport {
  std::vector<DatasetCheck> datasets;  ///< per-dataset details, also on failure
  bool ok = false;                            ///< every dataset matched and nothing failed
  std::string error;                          ///< first problem (empty when ok); messages per dataset above
};

/// What to leave out of a recursive verification.
struct VerifyOptions {
  /// syncoid --exclude patterns (as in the config); source descendants matching one are
  /// skipped, like syncoid skips them. Evaluated as ECMAScript regexes (close to Perl's
  /// for the simple patterns used in practice); an invalid pattern fails the verification.
  std::vector<std::string> exclude;
};

/// Verifies one pair: lists the source through `local` and, at the same time on a second thread,
/// the target through `remote` (neither runner is used by another thread meanwhile) (recursively when pair.recursive, mapping source child src/a/b to target tgt/a/b).
/// Fails on a listing error, a missing target dataset, a source dataset without snapshots,
/// or a newest source snapshot that the target lacks or has with a different GUID.
VerifyReport verify_pair(CommandRunner& local, CommandRunner& remote, const DatasetPair& pair,
                         std::chrono::seconds timeout, const VerifyOptions& options = {});

/// Verifies every pair of a job (excludes from job.syncoid.exclude) and merges the reports;
/// ok only if every pair is ok, error is the first pair's error.
VerifyReport verify_job(CommandRunner& local, CommandRunner& remote, const Job& job, std::chrono::seconds timeout);

}  // namespace hozo
