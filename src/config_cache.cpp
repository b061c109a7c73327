#include "hozo/config_cache.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "fast_json.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/version.hpp"

// A count of seconds is stored as a number.
template <>
struct nlohmann::adl_serializer<std::chrono::seconds> {
  static void to_json(json& j, const std::chrono::seconds& s) { j = s.count(); }
  static void from_json(const json& j, std::chrono::seconds& s) { s = std::chrono::seconds(j.get<std::int64_t>()); }
};

namespace hozo {

using nlohmann::json;

// One table per struct: nlohmann's type macro and the fast reader (fast_json.hpp) from one list. A
// missing key keeps the struct's default, so write_cache leaves out what equals it. Every Secret is
// left out: the cache holds no secret. The fast reader takes null only for an optional, as nlohmann's
// `value()` does.
#define HOZO_FAST_FIELD(value, member) fast_value(value, member)
#define HOZO_CACHE_TYPE(Type, ...)                                   \
  NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Type, __VA_ARGS__) \
  HOZO_FAST_READ(Type, __VA_ARGS__)
NLOHMANN_JSON_SERIALIZE_ENUM(Severity, {{Severity::error, "error"}, {Severity::warning, "warning"}})
NLOHMANN_JSON_SERIALIZE_ENUM(HostKeyPolicy, {{HostKeyPolicy::strict, "strict"}, {HostKeyPolicy::accept_new, "accept-new"}})
NLOHMANN_JSON_SERIALIZE_ENUM(HostSharing, {{HostSharing::concurrent, "concurrent"}, {HostSharing::wait, "wait"}})
NLOHMANN_JSON_SERIALIZE_ENUM(NotifyOn, {{NotifyOn::success, "success"}, {NotifyOn::failure, "failure"}})
HOZO_CACHE_TYPE(SourceLocation, file, line, column)
HOZO_CACHE_TYPE(ConfigIssue, where, path, message, severity, job)
HOZO_CACHE_TYPE(BrokenJob, name, where, issues)
HOZO_CACHE_TYPE(DatasetPair, source, target, recursive)
HOZO_CACHE_TYPE(SmtpSettings, host, port, user, from_addr, to_addr, use_tls)
HOZO_CACHE_TYPE(WolRelay, host, user, port, ssh_key, command)
HOZO_CACHE_TYPE(AgentSettings, url)

/// std::optional<T> of one of the structs above: null when empty (found by ADL through T).
template <typename T>
void to_json(json& j, const std::optional<T>& o) {
  j = o ? json(*o) : json(nullptr);
}
template <typename T>
void from_json(const json& j, std::optional<T>& o) {
  o = j.is_null() ? std::nullopt : std::optional<T>(j.get<T>());
}

HOZO_CACHE_TYPE(NotificationSettings, notify_on, ntfy_server, ntfy_topic, pushover_url,
                                                smtp, healthchecks_url, webhook_url, timeout)
HOZO_CACHE_TYPE(SyncoidSettings, path, compress, source_bwlimit, target_bwlimit,
                                                identifier, exclude, create_bookmark, create_bookmark_set,
                                                no_sync_snap, sendoptions, recvoptions, extra_args, timeout)
HOZO_CACHE_TYPE(Job, name, description, where, index, datasets, target_host, ssh_user,
                                                ssh_key, ssh_port, known_hosts, host_key_policy, ssh_timeout,
                                                ssh_connect_timeout, mac_address, wol_broadcast, wol_port,
                                                wol_interface, wol_repeat, wol_relay, retries, retry_delay,
                                                no_privilege_elevation, shutdown_after, shutdown_command,
                                                shutdown_only_if_woken, hold_snapshots, host_sharing,
                                                host_lock_timeout, target_pool_import, target_pool_import_dirs,
                                                schedule, overdue_after, backup_device, disk_spinup_timeout, agent,
                                                syncoid, notifications)
HOZO_CACHE_TYPE(ServeSettings, listen, password_hash_file, secure_cookies,
                                                session_lifetime, metrics_textfile)
HOZO_CACHE_TYPE(Config, path, jobs, notices, warnings, broken_jobs, history_limit,
                                                log_keep, serve, inputs)

namespace {

/// Bump when the layout below changes (2: JSON text, was CBOR).
constexpr int kCacheFormat = 2;
/// A cache larger than this is not read (200 jobs take ~60 KiB).
constexpr off_t kMaxCacheBytes = 16 * 1024 * 1024;

/// What identifies a file's content without reading it: "dev:ino:size:mtime:ctime" in ns, or
/// "absent".
std::string stamp(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return "absent";
  return fmt::format("{}:{}:{}:{}.{}:{}.{}", st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

/// Two independent 64-bit hashes of the config's bytes (FNV-1a and the standard library's).
std::string text_hash(std::string_view text) {
  std::uint64_t fnv = 14695981039346656037ULL;
  for (const char c : text) {
    fnv ^= static_cast<unsigned char>(c);
    fnv *= 1099511628211ULL;
  }
  return fmt::format("{:016x}{:016x}:{}", fnv, std::hash<std::string_view>{}(text), text.size());
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

/// Everything a parse depends on, except the Config::inputs (checked one by one).
json cache_key(const std::filesystem::path& path, std::string_view text) {
  return {{"format", kCacheFormat},
          {"hozo", kVersion},
          {"exe", stamp("/proc/self/exe")},
          {"path", path.string()},
          {"text", text_hash(text)},
          {"home", env_or_empty("HOME")},
          {"credentials", env_or_empty("CREDENTIALS_DIRECTORY")},
          {"euid", ::geteuid()}};
}

/// Removes from `value` what equals `defaults` (recursing into objects both have).
void strip_defaults(json& value, const json& defaults) {
  if (!value.is_object() || !defaults.is_object()) return;
  for (auto it = value.begin(); it != value.end();) {
    const auto d = defaults.find(it.key());
    if (d == defaults.end()) {
      ++it;
    } else if (*it == *d) {
      it = value.erase(it);
    } else {
      strip_defaults(*it, *d);
      ++it;
    }
  }
}

json compact(const Config& config) {
  json j = config;
  strip_defaults(j, json(Config{}));
  if (const auto jobs = j.find("jobs"); jobs != j.end()) {
    const json job_defaults = Job{};
    for (auto& job : *jobs) strip_defaults(job, job_defaults);
  }
  return j;
}

/// What the fast reader made of the cache.
enum class FastCache { hit, stale, declined };

/// Reads the cache with simdjson: stale when an input changed; declined when anything is unlike what
/// write_cache writes (the key's text included), for the nlohmann reader to decide.
FastCache read_cache_fast(const std::string& text, const std::string& key_text, Config& config) {
  using namespace fast_json;
  const simdjson::padded_string padded(text);
  od::parser parser;
  od::document doc;
  od::value root;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS || doc.get_value().get(root) != simdjson::SUCCESS) {
    return FastCache::declined;
  }
  bool stale = false;
  std::uint64_t want = 0;
  const bool read = fast_object(root, [&](std::string_view key, od::value value, std::uint64_t& seen) {
    const std::uint64_t bit = key == "key" ? 1 : key == "inputs" ? 2 : key == "config" ? 4 : 0;
    if (bit == 0 || (seen & bit) != 0) return false;
    seen |= bit;
    want = seen;
    if (bit == 1) {
      od::object object;
      std::string_view raw;
      return value.get_object().get(object) == simdjson::SUCCESS && object.raw_json().get(raw) == simdjson::SUCCESS &&
             raw == key_text;
    }
    if (bit == 4) return fast_read(value, config);
    od::array inputs;
    if (value.get_array().get(inputs) != simdjson::SUCCESS) return false;
    for (auto element : inputs) {
      od::value input;
      std::string file;
      std::string recorded;
      if (element.get(input) != simdjson::SUCCESS) return false;
      const bool pair = fast_object(input, [&](std::string_view name, od::value v, std::uint64_t& got) {
        const std::uint64_t b = name == "file" ? 1 : name == "stamp" ? 2 : 0;
        if (b == 0 || (got & b) != 0) return false;
        got |= b;
        return fast_value(v, b == 1 ? file : recorded);
      });
      if (!pair) return false;
      if (stamp(file) != recorded) stale = true;  // read on, so a damaged rest still declines
    }
    return true;
  });
  if (!read || want != 7 || !at_end(doc)) return FastCache::declined;
  return stale ? FastCache::stale : FastCache::hit;
}

/// The cached config, or nullopt when the cache is absent, stale or unreadable.
std::optional<Config> read_cache(const std::filesystem::path& cache_file, const json& key) {
  struct stat st {};
  if (::stat(cache_file.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxCacheBytes) return std::nullopt;
  auto bytes = read_file(cache_file);
  if (!bytes) return std::nullopt;
  Config config;
  switch (read_cache_fast(*bytes, key.dump(), config)) {
    case FastCache::hit:
      config.source = ConfigSource::display_cache;
      return config;
    case FastCache::stale:
      return std::nullopt;
    case FastCache::declined:
      spdlog::debug("config cache {} read by the full JSON reader", cache_file.string());
      break;
  }
  try {
    const json cached = json::parse(*bytes);
    if (cached.at("key") != key) return std::nullopt;
    for (const auto& input : cached.at("inputs")) {
      if (stamp(input.at("file").get<std::string>()) != input.at("stamp").get<std::string>()) return std::nullopt;
    }
    config = cached.at("config").get<Config>();
    config.source = ConfigSource::display_cache;
    return config;
  } catch (const json::exception& e) {
    spdlog::debug("config cache {} not used: {}", cache_file.string(), e.what());
    return std::nullopt;
  }
}

void write_cache(const std::filesystem::path& cache_file, json key, const Config& config) {
  std::error_code ec;
  if (!std::filesystem::is_directory(cache_file.parent_path(), ec) || ::access(cache_file.parent_path().c_str(), W_OK) != 0) {
    return;
  }
  auto inputs = json::array();
  for (const auto& file : config.inputs) inputs.push_back({{"file", file.string()}, {"stamp", stamp(file)}});
  const json cached = {{"key", std::move(key)}, {"inputs", std::move(inputs)}, {"config", compact(config)}};
  if (auto written = write_file_atomic(cache_file, cached.dump(), 0600, Durability::volatile_); !written) {
    spdlog::debug("config cache {} not written: {}", cache_file.string(), written.error().message);
  }
  // The CBOR cache of earlier builds, replaced by this one.
  if (const auto old = cache_file.parent_path() / "config-cache.cbor"; old != cache_file) std::filesystem::remove(old, ec);
}

}  // namespace

std::filesystem::path config_cache_path(const std::filesystem::path& state_path) {
  return state_path.parent_path() / "config-cache.json";
}

Result<Config> load_config_for_display(const std::filesystem::path& path, const std::filesystem::path& cache_file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return load_config(path, nullptr, JobErrors::isolate);
  auto text = read_file(path);
  if (!text) return load_config(path, nullptr, JobErrors::isolate);  // its error, worded as always
  auto key = cache_key(path, *text);
  if (auto cached = read_cache(cache_file, key)) return std::move(*cached);
  auto config = parse_config(*text, path.string(), nullptr, JobErrors::isolate);
  if (config) write_cache(cache_file, std::move(key), *config);
  return config;
}

}  // namespace hozo
