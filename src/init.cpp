#include "hozo/init.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>

#include <fmt/format.h>
#include <libssh/libssh.h>
#include <spdlog/spdlog.h>

#include "hozo/box.hpp"
#include "hozo/lock.hpp"
#include "hozo/ssh_api.hpp"
#include "hozo/util/fd.hpp"
#include "hozo/util/fs.hpp"
#include "ssh_key.hpp"
#include "hozo/util/strings.hpp"

namespace hozo {

namespace {

constexpr Millis kLeaseTimeout{30000};

/// A YAML double-quoted scalar (backslash, quote and control characters escaped).
std::string yq(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

/// "key: value" padded so the comments line up.
std::string kv(std::string_view key, const std::string& value, std::string_view comment) {
  std::string line = fmt::format("    {}: {}", key, value);
  if (comment.empty()) return line + "\n";
  if (line.size() < 40) line.resize(40, ' ');
  else line += ' ';
  return fmt::format("{}# {}\n", line, comment);
}

/// "ssh-ed25519 AAAA..." of a (private or public) key.
Result<std::string> public_blob(ssh_key key) {
  ssh_key pub = nullptr;
  if (ssh_pki_export_privkey_to_pubkey(key, &pub) != SSH_OK || pub == nullptr) {
    return make_error("libssh cannot derive the public key");
  }
  KeyPtr owned(pub);
  char* b64 = nullptr;
  if (ssh_pki_export_pubkey_base64(pub, &b64) != SSH_OK || b64 == nullptr) {
    return make_error("libssh cannot export the public key");
  }
  std::string blob(b64);
  ssh_string_free_char(b64);
  const char* type = ssh_key_type_to_char(ssh_key_type(pub));
  return fmt::format("{} {}", type != nullptr ? type : "ssh-ed25519", blob);
}

bool exists_no_follow(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::symlink_status(p, ec).type() != std::filesystem::file_type::not_found;
}

}  // namespace

// ------------------------------------------------------------------------------ pure pieces

std::string default_target_dataset(std::string_view source) {
  const auto slash = source.rfind('/');
  const std::string_view last = slash == std::string_view::npos ? source : source.substr(slash + 1);
  return fmt::format("backup/{}", last.empty() ? "data" : last);
}

std::filesystem::path default_key_path(const std::filesystem::path& config_path) {
  const auto dir = config_path.has_parent_path() ? config_path.parent_path() : std::filesystem::path(".");
  return dir / "id_ed25519";
}

std::string render_init_config(const InitAnswers& a, std::string_view generated_at, bool with_key) {
  const std::string target = a.target_dataset.empty() ? default_target_dataset(a.source) : a.target_dataset;
  std::string out;
  out += fmt::format("# hozo configuration for one job, written by `hozo init` ({}).\n", generated_at);
  out += "# Every key is described in hozo.yaml(5); `hozo config example` prints an annotated example\n"
         "# with all of them. After editing:  hozo config validate\n";
  out += fmt::format("# Then:  hozo check {0}          the online preflight (transfers nothing)\n"
                     "#        hozo jobs run {0}       a backup now\n"
                     "#        hozo schedule --install --enable   run it from a systemd timer\n",
                     a.name);
  out += "#\n"
         "# Notifications are not set up yet. To get a message after each run, add e.g.:\n"
         "# settings:\n"
         "#   notifications:\n"
         "#     notify_on: [failure]\n"
         "#     ntfy_topic: pick-a-long-random-topic   # public on ntfy.sh: anyone who knows it reads it\n"
         "#     healthchecks_url: https://hc-ping.com/<uuid>   # a dead man's switch\n"
         "\n"
         "jobs:\n";
  out += fmt::format("  - name: {}\n", yq(a.name));
  out += kv("source", yq(a.source), "the local dataset to back up");
  out += kv("recursive", a.recursive ? "true" : "false", a.recursive ? "with its child datasets" : "this dataset only");
  out += kv("target_host", yq(a.target_host), "the backup box (host name or address)");
  out += kv("target_dataset", yq(target), "where it goes on the box; its parent must exist there");
  if (a.wol) {
    out += kv("mac_address", yq(a.mac), "the box's network card, for Wake-on-LAN");
    out += kv("wol_broadcast", yq(a.wol_broadcast), "255.255.255.255 or the broadcast address of the box's LAN");
  } else {
    out += kv("wol", "false", "no Wake-on-LAN: the box is woken some other way or always on");
  }
  out += kv("ssh_user", yq(a.ssh_user), "the user on the box (root, or one with `zfs allow`)");
  if (a.ssh_port != 22) out += kv("ssh_port", std::to_string(a.ssh_port), "");
  if (with_key) {
    out += kv("ssh_key", yq(a.ssh_key), "made by hozo init; its .pub is in the box's authorized_keys");
  }
  if (!a.known_hosts.empty()) out += kv("known_hosts", yq(a.known_hosts), "the pinned host key of the box");
  out += kv("schedule", yq(a.schedule), a.schedule.empty() ? "manual runs only" : "see hozo.yaml(5) for the forms and time zones");
  out += "    # no_privilege_elevation: true     # a non-root ssh_user with `zfs allow` instead of sudo\n"
         "    # backup_device: /dev/disk/by-id/...   # spin the backup disk up before syncing\n"
         "    # agent:                           # backupd on the box (backupd(8)): power-off, pool health\n";
  out += fmt::format("    #   url: http://{}:9999\n", a.target_host);
  out += "    #   token_file: /etc/hozo/backupd.token\n";
  return out;
}

std::string init_field_for_issue(std::string_view path) {
  constexpr std::string_view prefix = "jobs[0]";
  if (!starts_with(path, prefix)) return {};
  std::string_view rest = path.substr(prefix.size());
  if (rest.empty() || rest.front() != '.') return {};
  rest.remove_prefix(1);
  const auto end = rest.find_first_of(".[");
  const std::string_view key = rest.substr(0, end);
  static const std::map<std::string_view, std::string_view> fields{
      {"name", "name"},           {"source", "source"},
      {"source_dataset", "source"}, {"datasets", "source"},
      {"recursive", "source"},    {"target_host", "target-host"},
      {"target_dataset", "target-dataset"}, {"mac_address", "mac"},
      {"wol_broadcast", "wol-broadcast"},   {"ssh_user", "ssh-user"},
      {"ssh_port", "ssh-port"},   {"ssh_key", "key"},
      {"known_hosts", "known-hosts"},       {"schedule", "schedule"}};
  const auto it = fields.find(key);
  return it == fields.end() ? std::string() : std::string(it->second);
}

std::map<std::string, std::string> validate_init_answers(const InitAnswers& answers) {
  std::map<std::string, std::string> out;
  const auto add = [&](const std::string& field, const std::string& message) {
    auto& slot = out[field];
    slot += slot.empty() ? message : "; " + message;
  };
  if (answers.source.empty()) add("source", "a source dataset is required");
  if (answers.target_host.empty()) add("target-host", "the backup box's host name or address is required");
  if (answers.wol && answers.mac.empty()) add("mac", "the box's MAC address is required for Wake-on-LAN (or --no-wol)");
  if (!out.empty()) return out;
  std::vector<ConfigIssue> issues;
  auto parsed = parse_config(render_init_config(answers, "validation", /*with_key=*/false), "hozo init", &issues);
  if (parsed) return out;
  if (issues.empty()) add("", parsed.error().message);
  for (const auto& issue : issues) add(init_field_for_issue(issue.path), issue.path + ": " + issue.message);
  return out;
}

std::string authorized_keys_line(std::string_view public_line, std::string_view from) {
  if (from.empty()) return fmt::format("restrict {}", public_line);
  return fmt::format("from=\"{}\",restrict {}", from, public_line);
}

// ------------------------------------------------------------------------------ files

Result<IdentityKey> ensure_identity_key(const std::filesystem::path& path, std::string_view comment) {
  if (auto loaded = libssh::load(); !loaded) return std::move(loaded).error();
  IdentityKey out;
  out.private_path = path;
  const std::filesystem::path pub_path = path.string() + ".pub";
  if (exists_no_follow(path)) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return make_error("{} exists but is not a regular file; give another --key", path.string());
    }
    if ((st.st_mode & 077) != 0) {
      return make_error("the existing key {} is readable by others (mode {:04o}); ssh refuses such keys: "
                        "chmod 600 {}", path.string(), st.st_mode & 07777, path.string());
    }
    ssh_key key = nullptr;
    if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK || key == nullptr) {
      return make_error("{} exists but is not a private key without passphrase (hozo runs unattended); hozo init "
                        "never overwrites a key: give another --key",
                        path.string());
    }
    KeyPtr owned(key);
    auto blob = public_blob(key);
    if (!blob) return std::move(blob).error();
    out.public_line = *blob + " " + std::string(comment);
    if (auto text = read_file(pub_path); text) {
      const std::string line(trim(*text));
      if (starts_with(line, *blob)) out.public_line = line;  // keep the comment it was made with
    }
    out.fingerprint = fingerprint_of(key);
    return out;
  }
  if (exists_no_follow(pub_path)) {
    return make_error("{} exists without its private key {}; hozo init never overwrites a key: remove it or give "
                      "another --key",
                      pub_path.string(), path.string());
  }
  if (path.has_parent_path()) {
    if (auto made = make_dirs(path.parent_path(), 0700); !made) return std::move(made).error();
  }
  ssh_key key = nullptr;
  if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK || key == nullptr) {
    return make_error("libssh could not generate an ed25519 key");
  }
  KeyPtr owned(key);
  char* b64 = nullptr;
  if (ssh_pki_export_privkey_base64(key, nullptr, nullptr, nullptr, &b64) != SSH_OK || b64 == nullptr) {
    return make_error("libssh could not export the new key");
  }
  std::string private_text(b64);
  // Scrub libssh's copy of the private key before freeing it.
  std::memset(b64, 0, private_text.size());
  ssh_string_free_char(b64);
  if (private_text.empty() || private_text.back() != '\n') private_text += '\n';
  auto blob = public_blob(key);
  if (!blob) return std::move(blob).error();
  out.public_line = *blob + " " + std::string(comment);
  out.fingerprint = fingerprint_of(key);
  auto written = write_file_new(path, private_text, 0600);
  std::fill(private_text.begin(), private_text.end(), '\0');
  if (!written) return std::move(written).error();
  if (auto pub = write_file_new(pub_path, out.public_line + "\n", 0644); !pub) return std::move(pub).error();
  out.created = true;
  return out;
}

Result<std::string> local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return make_error("cannot resolve {}: {}", printable(host), ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
  std::string last_error = "no address";
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd.open()) {
      last_error = std::strerror(errno);
      continue;
    }
    // connect() on a UDP socket only picks the route and source address; nothing is sent.
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last_error = std::strerror(errno);
      continue;
    }
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &len) != 0) {
      last_error = std::strerror(errno);
      continue;
    }
    char text[INET6_ADDRSTRLEN] = {};
    const void* addr = local.ss_family == AF_INET6
                           ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(&local)->sin6_addr)
                           : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(&local)->sin_addr);
    if (::inet_ntop(local.ss_family, addr, text, sizeof(text)) == nullptr) {
      last_error = std::strerror(errno);
      continue;
    }
    return std::string(text);
  }
  return make_error("no route to {}: {}", printable(host), last_error);
}

Result<void> write_init_config(const std::filesystem::path& path, std::string_view text, Overwrite overwrite) {
  if (path.has_parent_path()) {
    if (auto made = make_dirs(path.parent_path(), 0700); !made) return made;
  }
  if (exists_no_follow(path)) {
    if (overwrite == Overwrite::no) {
      return make_error(ExitCode::usage, "{} already exists; hozo init does not replace a config (--force replaces it, "
                                         "keeping the old one as {}.bak)",
                        path.string(), path.string());
    }
    auto old = read_file(path);
    if (!old) return std::move(old).error();
    if (auto saved = write_file_atomic(path.string() + ".bak", *old, 0600); !saved) return saved;
  }
  return write_file_atomic(path, text, 0600);
}

// ------------------------------------------------------------------------------ online part

InitOnlineResult run_init_online(const Job& job, InitOnlineEnv& env, InitUi& ui) {
  InitOnlineResult result;
  const auto opts = ssh_options_for(job);
  const auto cancelled = [&] { return env.cancel != nullptr && env.cancel->load(); };
  const std::string where = fmt::format("{}:{}", job.target_host, job.ssh_port);

  std::optional<HostLease> lease;
  if (!env.state_dir.empty()) {
    auto taken = HostLease::acquire(env.state_dir, job.target_host, HostSharing::concurrent, kLeaseTimeout);
    if (!taken) {
      ui.say(fmt::format("✗ {}", taken.error().message));
      result.exit_code = to_int(taken.error().code);
      return result;
    }
    lease.emplace(std::move(*taken));
  }
  bool box_up = false;
  // The end of every path: power off a box init woke (same rules as a run), and say so.
  const auto finish = [&]() -> InitOnlineResult {
    if (lease) {
      result.power = finish_host_use(*lease, env.systems, job, box_up, PowerOffRules{true, true});
      switch (result.power.outcome) {
        case ShutdownOutcome::done: ui.say(fmt::format("✓ power off: init woke the box; {}", result.power.message)); break;
        case ShutdownOutcome::failed:
          ui.say(fmt::format("✗ power off: init woke the box but could not power it off: {}", result.power.message));
          ui.say(fmt::format("  fix: once the login works, `hozo shutdown {}` (the next run powers it off too)", job.name));
          if (result.exit_code == 0) result.exit_code = to_int(ExitCode::failure);
          break;
        case ShutdownOutcome::skipped_in_use:
          ui.say("  the box stays on: a job uses it now; the last one powers it off");
          break;
        case ShutdownOutcome::skipped_not_woken:
        case ShutdownOutcome::not_requested:
          if (result.woke) ui.say(fmt::format("  box left on: {}", result.power.message));
          break;
      }
    }
    return result;
  };

  const auto probe = env.systems.probe(job);
  if (probe.state == ProbeState::up) {
    box_up = true;
    ui.say(fmt::format("✓ box: {} is up ({})", where, probe.banner));
    if (lease && lease->first_user()) {
      if (env.state != nullptr) {
        (void)settle_woken_marker(*lease, *env.state, job);
      } else {
        (void)lease->clear_woken();
      }
    }
  } else if (job.mac_address.empty() && !job.wol_relay) {
    ui.say(fmt::format("✗ box: {} does not answer ({}) and the job has no Wake-on-LAN", where, probe.describe()));
    ui.say(fmt::format("  fix: switch the box on, then `hozo hostkey {0}` and `hozo check {0}`", job.name));
    result.exit_code = to_int(ExitCode::unavailable);
    return finish();
  } else {
    ui.say(fmt::format("… box: {} does not answer ({}); waking it (Wake-on-LAN to {})", where, probe.describe(),
                       job.mac_address));
    auto sent = env.systems.wake(job);
    if (!sent) {
      ui.say(fmt::format("✗ wake: {}", sent.error().message));
      result.exit_code = to_int(ExitCode::failure);
      return finish();
    }
    result.woke = true;
    if (lease) {
      if (auto m = lease->mark_woken(fmt::format("init-{}", ::getpid())); !m) spdlog::warn("{}", m.error().message);
    }
    auto up = wait_for_box(env.systems, job, env.cancel);
    if (!up) {
      ui.say(fmt::format("✗ box: woken, but: {}", up.error().message));
      ui.say("  fix: check the MAC address, Wake-on-LAN in the box's firmware and on its network card "
             "(see \"Preparing the backup box\" in hozo(1)), and ssh_timeout");
      result.exit_code = up.error().code == ExitCode::interrupted ? to_int(ExitCode::interrupted)
                                                                  : to_int(ExitCode::unavailable);
      return finish();
    }
    box_up = true;
    ui.say(fmt::format("✓ box: woken, answered after {}", format_duration(up->elapsed)));
  }

  // The host key: shown, compared by the user, pinned (the same functions as `hozo hostkey --accept`).
  auto info = env.fetch_host_key ? env.fetch_host_key(opts) : fetch_host_key(opts);
  if (!info) {
    ui.say(fmt::format("✗ host key: {}", info.error().message));
    result.exit_code = to_int(ExitCode::failure);
    return finish();
  }
  ui.say(fmt::format("  host key: {} presents {} key {}", where, info->key_type, info->fingerprint));
  switch (info->state) {
    case HostKeyState::known:
      ui.say(fmt::format("✓ host key: already trusted in {}", opts.known_hosts.string()));
      result.host_key_pinned = true;
      break;
    case HostKeyState::changed:
    case HostKeyState::other:
      ui.say(fmt::format("✗ host key: {} records a DIFFERENT key for {} (possible attack); not replacing it. If the "
                         "box was reinstalled, remove the old entry (ssh-keygen -R '[{}]:{}' -f {}) and run "
                         "`hozo hostkey {} --accept`",
                         opts.known_hosts.string(), job.target_host, job.target_host, job.ssh_port,
                         opts.known_hosts.string(), job.name));
      result.exit_code = to_int(ExitCode::failure);
      return finish();
    case HostKeyState::unknown: {
      ui.say("  Compare it with the box's own: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub (on the box)");
      if (!ui.confirm(fmt::format("Trust this key and pin it in {}?", opts.known_hosts.string()))) {
        ui.say(fmt::format("✗ host key: not pinned; after comparing: `hozo hostkey {} --accept`", job.name));
        result.exit_code = to_int(ExitCode::failure);
        return finish();
      }
      auto pinned = env.pin_host_key ? env.pin_host_key(opts, info->fingerprint) : pin_host_key(opts, info->fingerprint);
      if (!pinned) {
        ui.say(fmt::format("✗ host key: {}", pinned.error().message));
        result.exit_code = to_int(ExitCode::failure);
        return finish();
      }
      ui.say(fmt::format("✓ host key: pinned {} in {}", info->fingerprint, opts.known_hosts.string()));
      result.host_key_pinned = true;
      break;
    }
  }

  // The login with the new key: it works once the authorized_keys line is on the box.
  while (true) {
    auto login = env.check_login ? env.check_login(opts) : check_login(opts);
    if (login) break;
    if (cancelled()) {
      result.exit_code = to_int(ExitCode::interrupted);
      return finish();
    }
    if (!ui.wait_for_key_install(login.error().message)) {
      ui.say(fmt::format("✗ ssh login: {}", login.error().message));
      ui.say(fmt::format("  fix: put the authorized_keys line above on the box, then `hozo check {}`", job.name));
      result.exit_code = cancelled() ? to_int(ExitCode::interrupted) : to_int(ExitCode::failure);
      return finish();
    }
  }
  result.login_ok = true;
  ui.say(fmt::format("✓ ssh login: {}@{} accepts the key", job.ssh_user, where));

  // `hozo check NAME`: the box is up, so the check itself neither wakes nor powers off.
  if (env.run_check) {
    result.check = env.run_check(job);
  } else {
    CheckEnv check_env{env.systems, {}, {}, {}, {}, env.state_dir, env.config_path, env.state};
    CheckOptions check_options;
    check_options.cancel = env.cancel;
    result.check = run_checks(job, check_env, check_options);
  }
  ui.say(fmt::format("hozo check {}:", job.name));
  ui.say(format_report(*result.check));
  if (result.check->interrupted) {
    result.exit_code = to_int(ExitCode::interrupted);
  } else if (!result.check->ok()) {
    result.exit_code = to_int(ExitCode::failure);
  }
  return finish();
}

}  // namespace hozo
