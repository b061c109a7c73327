#pragma once
// The display cache: the commands that only show the config (`jobs list`, `jobs names`, `status`,
// `logs`, `history`) keep the parsed config in one file beside the state, so that they need not
// parse the YAML again (yaml-cpp takes ~10 ms for 200 jobs, most of such a command). It holds no
// secret: a Config read back from it has every Secret empty and must never drive a run.

#include <filesystem>

#include "hozo/config.hpp"
#include "hozo/util/result.hpp"

namespace hozo {

/// The display cache of a state file: "config-cache.json" in its directory.
std::filesystem::path config_cache_path(const std::filesystem::path& state_path);

/// load_config(path, nullptr, JobErrors::isolate), answered from `cache_file` when that was written
/// for the same bytes at the same path, by the same hozo executable, with the same $HOME,
/// $CREDENTIALS_DIRECTORY and user, and no file in Config::inputs changed since (size, times,
/// inode). Otherwise the file is parsed and, when `cache_file`'s directory exists and is writable,
/// the cache is rewritten (atomically, without fsync: a lost or damaged cache is only parsed
/// again). A config from the cache has source ConfigSource::display_cache and no secrets.
Result<Config> load_config_for_display(const std::filesystem::path& path, const std::filesystem::path& cache_file);

}  // namespace hozo
