#pragma once
// The configuration: YAML file -> validated, defaults-resolved Config.
// Format: see man/hozo.yaml.5 and examples/hozo.yaml. Compatible with the Python Hōzō format
// (settings: + jobs:, `source`/`broadcast_ip` aliases); extensions are documented there too.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "hozo/util/result.hpp"
#include "hozo/util/secret.hpp"

namespace hozo {

/// Where a value came from in the YAML file (1-based), for error messages.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
};

/// How bad a configuration issue is: errors make the file (or one job) unusable, warnings do not.
enum class Severity { error, warning };

/// One configuration problem: "FILE:LINE:COL: jobs[2].mac_address: invalid MAC "zz:..."".
struct ConfigIssue {
  SourceLocation where;
  std::string path;     ///< dotted key path, e.g. "jobs[2].mac_address"
  std::string message;  ///< what is wrong (and a did-you-mean hint where there is one)
  Severity severity = Severity::error;
  /// The job the issue belongs to (its name, or "jobs[N]" when it has no valid name); empty for
  /// problems of the file as a whole (syntax, settings:, the jobs: list itself).
  std::string job;
  /// The line printed to the user ("warning: " in front of warnings).
  [[nodiscard]] std::string to_string() const;
};

/// "error" / "warning".
const char* to_string(Severity s);

/// What parse_config does with errors inside a job entry.
enum class JobErrors {
  fail,    ///< any error fails the whole file (`hozo config validate`)
  isolate  ///< the job is left out of Config::jobs and listed in Config::broken_jobs
};

/// A job entry that cannot be used because of errors in it (JobErrors::isolate).
struct BrokenJob {
  std::string name;  ///< the job's name, or "jobs[N]" when it has no valid name
  SourceLocation where;
  std::vector<ConfigIssue> issues;
};

/// How an unknown SSH host key is treated (a changed key always fails).
enum class HostKeyPolicy { strict, accept_new };

/// Whether a second job for a host that is already in use waits or runs alongside.
enum class HostSharing { concurrent, wait };

/// Which outcomes trigger notifications.
enum class NotifyOn { success, failure };

/// One replicated dataset: local source -> remote target.
struct DatasetPair {
  std::string source;
  std::string target;
  bool recursive = true;
};

/// SMTP settings (old format: settings.notifications.smtp).
struct SmtpSettings {
  std::string host;
  int port = 587;
  std::string user;
  Secret password;
  std::string from_addr;
  std::vector<std::string> to_addr;  ///< a single string in the old format, or a list
  bool use_tls = true;               ///< STARTTLS (or smtps on port 465)
};

/// Notification channels (settings.notifications, optionally overridden per job).
struct NotificationSettings {
  std::vector<NotifyOn> notify_on{NotifyOn::success, NotifyOn::failure};
  std::string ntfy_server = "https://ntfy.sh";
  std::string ntfy_topic;  ///< empty = ntfy off
  Secret ntfy_token;
  Secret pushover_token;  ///< empty = Pushover off
  Secret pushover_user;
  std::string pushover_url = "https://api.pushover.net/1/messages.json";
  std::optional<SmtpSettings> smtp;
  std::string healthchecks_url;  ///< ping URL; /start and /fail are appended
  std::string webhook_url;       ///< receives the result object as JSON
  std::chrono::seconds timeout{10};
};

/// syncoid options (job.syncoid / settings.syncoid).
struct SyncoidSettings {
  std::string path = "syncoid";
  std::string compress;  ///< e.g. "lz4", "none"; empty = syncoid default
  std::string source_bwlimit;
  std::string target_bwlimit;
  std::string identifier;
  std::vector<std::string> exclude;
  bool create_bookmark = false;
  /// create_bookmark was written in the config (else hozo decides: on with no_sync_snap where the
  /// source pool has feature@bookmarks; see decide_create_bookmark).
  bool create_bookmark_set = false;
  bool no_sync_snap = false;
  std::string sendoptions;
  std::string recvoptions;
  std::vector<std::string> extra_args;
  std::chrono::seconds timeout{24 * 3600};
};

/// Wake-on-LAN relay: an always-on host on the remote LAN that sends the packet.
struct WolRelay {
  std::string host;
  std::string user = "root";
  int port = 22;
  std::string ssh_key;
  /// argv run on the relay; "{mac}", "{broadcast}", "{port}" are substituted.
  std::vector<std::string> command{"wakeonlan", "-i", "{broadcast}", "-p", "{port}", "{mac}"};
};

/// backupd on the remote box.
struct AgentSettings {
  std::string url;  ///< e.g. http://192.0.2.10:9999
  Secret token;     ///< from token_file (or $CREDENTIALS_DIRECTORY)
};

/// One backup job with every default resolved (settings: < job).
struct Job {
  std::string name;
  std::string description;
  SourceLocation where;  ///< position of the job entry in the file
  std::size_t index = 0;  ///< position in the jobs: list (0-based, as in "jobs[2].mac_address")

  std::vector<DatasetPair> datasets;  ///< from source/target_dataset or datasets:

  // Remote box and SSH.
  std::string target_host;
  std::string ssh_user = "root";
  std::string ssh_key;  ///< identity file; empty = ~/.ssh/id_ed25519 etc.
  int ssh_port = 22;
  std::string known_hosts;  ///< empty = default (/var/lib/hozo/known_hosts or ~/.ssh/known_hosts)
  HostKeyPolicy host_key_policy = HostKeyPolicy::strict;
  std::chrono::seconds ssh_timeout{120};         ///< how long to wait for the box to come up
  std::chrono::seconds ssh_connect_timeout{10};  ///< per connection attempt / command read

  // Wake-on-LAN.
  std::string mac_address;  ///< normalized "aa:bb:cc:dd:ee:ff"; empty = no WOL
  std::string wol_broadcast = "255.255.255.255";
  int wol_port = 9;
  std::string wol_interface;
  int wol_repeat = 3;
  Secret wol_password;  ///< optional SecureOn password (6 bytes as MAC-style hex)
  std::optional<WolRelay> wol_relay;

  // Pipeline behaviour.
  int retries = 3;
  std::chrono::seconds retry_delay{60};
  bool no_privilege_elevation = false;
  bool shutdown_after = true;
  std::string shutdown_command = "shutdown -h now";
  bool shutdown_only_if_woken = true;
  bool hold_snapshots = true;  ///< `zfs hold hozo:<job>` on the newest verified snapshot, both sides
  HostSharing host_sharing = HostSharing::concurrent;
  std::chrono::seconds host_lock_timeout{3600};
  bool target_pool_import = true;
  std::vector<std::string> target_pool_import_dirs;  ///< `zpool import -d DIR` search dirs; empty = default
  std::string schedule;  ///< as written; validated by schedule parsing
  /// `status` calls the job overdue when its last success is older than this; 0 = 1.5x the
  /// schedule's period (no schedule: never overdue).
  std::chrono::seconds overdue_after{0};
  std::string backup_device;
  std::chrono::seconds disk_spinup_timeout{90};
  std::optional<AgentSettings> agent;

  SyncoidSettings syncoid;
  NotificationSettings notifications;
};

/// `hozo serve` and the metrics textfile (top-level serve: block; see src/serve/).
struct ServeSettings {
  std::string listen = "127.0.0.1:8000";  ///< ADDR:PORT ([ADDR]:PORT for IPv6); --listen overrides
  std::string password_hash_file;         ///< crypt(3) hash (yescrypt) of the dashboard password
  Secret token;                           ///< bearer token for the API (token_file)
  bool secure_cookies = false;            ///< mark cookies Secure (served behind a TLS proxy)
  std::chrono::seconds session_lifetime{12 * 3600};
  std::string metrics_textfile;           ///< written atomically after every run (node_exporter)
};

/// Where a Config came from.
enum class ConfigSource {
  file,          ///< parsed from its YAML file
  display_cache  ///< from the display cache (config_cache.hpp): every Secret in it is empty
};

/// The whole validated configuration.
struct Config {
  std::filesystem::path path;
  ConfigSource source = ConfigSource::file;
  /// Files read while parsing besides the config itself: each *_file secret as resolved (also one
  /// that is missing). The display cache is valid only while none of them changes.
  std::vector<std::filesystem::path> inputs;
  std::vector<Job> jobs;
  std::vector<std::string> notices;  ///< non-fatal remarks (e.g. "auth: block ignored")
  std::vector<ConfigIssue> warnings;  ///< likely mistakes that do not stop a run (same box, other MAC)
  std::vector<BrokenJob> broken_jobs;  ///< job entries with errors (JobErrors::isolate only)
  std::size_t history_limit = 50;    ///< settings.history
  std::size_t log_keep = 20;         ///< settings.log_keep: run logs kept per job
  ServeSettings serve;               ///< serve: block

  /// The job with this name, or nullptr.
  [[nodiscard]] const Job* find_job(std::string_view name) const;
  /// The broken job entry with this name, or nullptr.
  [[nodiscard]] const BrokenJob* find_broken(std::string_view name) const;
};

/// Parses and validates YAML text. `file_name` is used in messages only.
/// On failure the Error (code 78) lists every error, one per line; `issues_out` (if given)
/// receives them structured, followed by the warnings. With JobErrors::isolate only errors
/// outside job entries fail; a job with errors goes to Config::broken_jobs. YAML merge keys
/// (`<<: *anchor`) are resolved. Never touches the network; reads only *_file secrets
/// (relative paths resolve against $CREDENTIALS_DIRECTORY when set).
Result<Config> parse_config(std::string_view yaml_text, const std::string& file_name,
                            std::vector<ConfigIssue>* issues_out = nullptr, JobErrors job_errors = JobErrors::fail);

/// Reads and validates a config file.
Result<Config> load_config(const std::filesystem::path& path, std::vector<ConfigIssue>* issues_out = nullptr,
                           JobErrors job_errors = JobErrors::fail);

/// The path used when -c/--config and HOZO_CONFIG are absent:
/// /etc/hozo/hozo.yaml as root, else ~/.config/hozo/config.yaml.
std::filesystem::path default_config_path();

/// The annotated example configuration (also shipped as examples/hozo.yaml).
std::string example_config();

/// All keys accepted in a job entry / settings block (for docs tests and did-you-mean).
std::vector<std::string> known_job_keys();

}  // namespace hozo
