#pragma once
// `hozo init`: the first set-up of one job. The answers (from prompts or options) become a
// commented config that must pass the config validator; a dedicated ed25519 key is generated
// (never overwritten); the box's authorized_keys line is built (from="<this machine>",restrict);
// then, online, the box is woken if needed, its host key shown and pinned, the login awaited,
// `hozo check` run and the box powered off again by the usual rules (only if init woke it).
//
// The pure pieces (rendering, validation, the authorized_keys line) and the file steps are
// separate functions for unit tests; the online part runs against JobSystems and an InitUi,
// both of which tests replace with fakes.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/check.hpp"
#include "hozo/config.hpp"
#include "hozo/job.hpp"
#include "hozo/ssh.hpp"
#include "hozo/util/result.hpp"

namespace hozo {

/// Every answer `hozo init` needs; the defaults are the ones offered in brackets.
struct InitAnswers {
  std::string name = "nightly";
  std::string source;          ///< local dataset (required)
  bool recursive = true;
  std::string target_host;     ///< the backup box (required)
  std::string target_dataset;  ///< empty = default_target_dataset(source)
  bool wol = true;             ///< false: no Wake-on-LAN (the box is woken some other way)
  std::string mac;             ///< required when wol
  std::string wol_broadcast = "255.255.255.255";
  std::string ssh_user = "root";
  int ssh_port = 22;
  std::string ssh_key;         ///< empty = default_key_path(config path)
  std::string known_hosts;     ///< empty = hozo's default (not written to the config)
  std::string schedule = "daily 02:00";
  std::string from;            ///< address for from= in authorized_keys; empty = found by route lookup
};

/// "backup/<last component of source>" ("backup/data" for "tank/data", "backup/tank" for "tank").
std::string default_target_dataset(std::string_view source);

/// The dedicated key next to the config: "<config dir>/id_ed25519".
std::filesystem::path default_key_path(const std::filesystem::path& config_path);

/// The commented config for one job (UTF-8 YAML). `generated_at` goes into the header comment.
/// With `with_key` false the ssh_key line is left out (to validate the answers before a key exists).
std::string render_init_config(const InitAnswers& answers, std::string_view generated_at, bool with_key = true);

/// The answer an option or prompt sets ("mac", "source", ...), by config path ("jobs[0].mac_address").
/// Empty when the path is not one of the answers.
std::string init_field_for_issue(std::string_view path);

/// Validates the answers with the real config validator (the config is parsed, not written).
/// Returns the issues by field ("mac" -> "invalid MAC ..."); issues that belong to no field are
/// under "". Empty map = valid.
std::map<std::string, std::string> validate_init_answers(const InitAnswers& answers);

/// A public key as authorized_keys and the fingerprint show it.
struct IdentityKey {
  std::filesystem::path private_path;
  std::string public_line;   ///< "ssh-ed25519 AAAA... comment"
  std::string fingerprint;   ///< "SHA256:..."
  bool created = false;      ///< false: an existing key was reused
};

/// Generates an ed25519 key at `path` (private key 0600 in OpenSSH format, `path`.pub 0644) with
/// libssh, or reuses the key already there: an existing key is never overwritten. Fails for an
/// existing file that is not an unencrypted private key, or a lone `path`.pub.
Result<IdentityKey> ensure_identity_key(const std::filesystem::path& path, std::string_view comment);

/// The line for the box's ~USER/.ssh/authorized_keys:
/// `from="ADDR",restrict ssh-ed25519 AAAA... comment` (no from= when `from` is empty).
/// `restrict` turns off forwarding, pty and ~/.ssh/rc; commands still run (syncoid needs them).
std::string authorized_keys_line(std::string_view public_line, std::string_view from);

/// This machine's address as the box sees it (on a routed path without NAT): the source address
/// the kernel picks for a UDP "connection" to host:port. No packet is sent.
Result<std::string> local_address_towards(const std::string& host, int port);

/// Whether an existing config may be replaced.
enum class Overwrite { no, yes };

/// Writes the config crash-safely with mode 0600 (its directory created 0700 when missing).
/// With Overwrite::no an existing file is an Error (usage) naming --force.
Result<void> write_init_config(const std::filesystem::path& path, std::string_view text, Overwrite overwrite);

/// How init talks to the user during the online part (a terminal, --yes, or a test).
class InitUi {
 public:
  virtual ~InitUi() = default;
  /// A line of progress or instructions.
  virtual void say(std::string_view line) = 0;
  /// Yes/no question (the host key). --yes answers yes without asking.
  virtual bool confirm(std::string_view question) = 0;
  /// The key is not accepted yet: wait for the user (Enter on a terminal) and return true to try
  /// again, false to give up. --yes waits a poll interval until its deadline.
  virtual bool wait_for_key_install(std::string_view why) = 0;
};

/// What the online part talks to; the defaults are the real functions.
struct InitOnlineEnv {
  JobSystems& systems;
  std::filesystem::path state_dir;   ///< for the host lease and woken marker; empty = no lease (tests)
  std::filesystem::path config_path; ///< for the check's first row
  const StateStore* state = nullptr;
  std::function<Result<HostKeyInfo>(const SshOptions&)> fetch_host_key;                     ///< empty = hozo::fetch_host_key
  std::function<Result<void>(const SshOptions&, std::string_view fingerprint)> pin_host_key;  ///< empty = hozo::pin_host_key
  std::function<Result<void>(const SshOptions&)> check_login;                                ///< empty = hozo::check_login
  std::function<CheckReport(const Job&)> run_check;  ///< empty = run_checks with the real CheckEnv
  const std::atomic<bool>* cancel = nullptr;
};

/// How the online part ended.
struct InitOnlineResult {
  bool host_key_pinned = false;
  bool login_ok = false;
  std::optional<CheckReport> check;   ///< the final `hozo check`, when it ran
  bool woke = false;                  ///< init woke the box
  ShutdownResult power;               ///< what happened to a box init woke
  /// 0 all done; 1 a step failed (said in the lines); 69 the box never answered; 130 interrupted.
  int exit_code = 0;
};

/// The online part for the job init just wrote: wake the box if it is off (host lease and woken
/// marker, as a run does), show the host key and pin it after `ui.confirm`, wait until the login
/// with the new key works, run the check, and power off a box init woke (finish_host_use).
InitOnlineResult run_init_online(const Job& job, InitOnlineEnv& env, InitUi& ui);

}  // namespace hozo
