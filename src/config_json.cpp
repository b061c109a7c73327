#include "hozo/config_json.hpp"

namespace hozo {

namespace {

nlohmann::ordered_json secret_json(const Secret& s) {
  if (s.empty()) return nullptr;
  nlohmann::ordered_json j;
  j["value"] = s.masked();
  if (!s.origin().empty()) j["from"] = s.origin();
  return j;
}

/// A URL whose path is a credential (ping UUID, webhook key): keep scheme and host only.
std::string masked_url(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url.empty() ? url : "********";
  const auto path = url.find('/', scheme + 3);
  if (path == std::string::npos || path + 1 >= url.size()) return url;
  return url.substr(0, path) + "/********";
}

nlohmann::ordered_json notifications_json(const NotificationSettings& n) {
  nlohmann::ordered_json j;
  auto on = nlohmann::ordered_json::array();
  for (const auto o : n.notify_on) on.push_back(to_string(o));
  j["notify_on"] = on;
  j["ntfy_server"] = n.ntfy_server;
  j["ntfy_topic"] = n.ntfy_topic;
  j["ntfy_token"] = secret_json(n.ntfy_token);
  j["pushover_token"] = secret_json(n.pushover_token);
  j["pushover_user"] = secret_json(n.pushover_user);
  j["pushover_url"] = n.pushover_url;
  if (n.smtp) {
    const auto& s = *n.smtp;
    j["smtp"] = {{"host", s.host},           {"port", s.port},       {"user", s.user},
                 {"password", secret_json(s.password)}, {"from_addr", s.from_addr}, {"to_addr", s.to_addr},
                 {"use_tls", s.use_tls}};
  } else {
    j["smtp"] = nullptr;
  }
  j["healthchecks_url"] = masked_url(n.healthchecks_url);
  j["webhook_url"] = masked_url(n.webhook_url);
  j["timeout"] = n.timeout.count();
  return j;
}

}  // namespace

nlohmann::json issue_json(const ConfigIssue& issue) {
  return {{"file", issue.where.file},
          {"line", issue.where.line > 0 ? nlohmann::json(issue.where.line) : nlohmann::json(nullptr)},
          {"column", issue.where.column > 0 ? nlohmann::json(issue.where.column) : nlohmann::json(nullptr)},
          {"path", issue.path},
          {"message", issue.message},
          {"severity", to_string(issue.severity)},
          {"job", issue.job.empty() ? nlohmann::json(nullptr) : nlohmann::json(issue.job)}};
}

const char* to_string(HostKeyPolicy p) { return p == HostKeyPolicy::strict ? "strict" : "accept-new"; }
const char* to_string(HostSharing s) { return s == HostSharing::concurrent ? "concurrent" : "wait"; }
const char* to_string(NotifyOn n) { return n == NotifyOn::success ? "success" : "failure"; }

nlohmann::ordered_json job_to_json(const Job& job) {
  nlohmann::ordered_json j;
  j["name"] = job.name;
  j["description"] = job.description;
  auto datasets = nlohmann::ordered_json::array();
  for (const auto& d : job.datasets) {
    datasets.push_back({{"source", d.source}, {"target", d.target}, {"recursive", d.recursive}});
  }
  j["datasets"] = datasets;
  j["target_host"] = job.target_host;
  j["ssh_user"] = job.ssh_user;
  j["ssh_key"] = job.ssh_key;
  j["ssh_port"] = job.ssh_port;
  j["known_hosts"] = job.known_hosts;
  j["host_key_policy"] = to_string(job.host_key_policy);
  j["ssh_timeout"] = job.ssh_timeout.count();
  j["ssh_connect_timeout"] = job.ssh_connect_timeout.count();
  j["mac_address"] = job.mac_address;
  j["wol_broadcast"] = job.wol_broadcast;
  j["wol_port"] = job.wol_port;
  j["wol_interface"] = job.wol_interface;
  j["wol_repeat"] = job.wol_repeat;
  j["wol_password"] = secret_json(job.wol_password);
  if (job.wol_relay) {
    j["wol_relay"] = {{"host", job.wol_relay->host},
                      {"user", job.wol_relay->user},
                      {"port", job.wol_relay->port},
                      {"ssh_key", job.wol_relay->ssh_key},
                      {"command", job.wol_relay->command}};
  } else {
    j["wol_relay"] = nullptr;
  }
  j["retries"] = job.retries;
  j["retry_delay"] = job.retry_delay.count();
  j["no_privilege_elevation"] = job.no_privilege_elevation;
  j["shutdown_after"] = job.shutdown_after;
  j["shutdown_command"] = job.shutdown_command;
  j["shutdown_only_if_woken"] = job.shutdown_only_if_woken;
  j["hold_snapshots"] = job.hold_snapshots;
  j["host_sharing"] = to_string(job.host_sharing);
  j["host_lock_timeout"] = job.host_lock_timeout.count();
  j["overdue_after"] = job.overdue_after.count();
  j["target_pool_import"] = job.target_pool_import;
  j["target_pool_import_dirs"] = job.target_pool_import_dirs;
  j["schedule"] = job.schedule;
  j["backup_device"] = job.backup_device;
  j["disk_spinup_timeout"] = job.disk_spinup_timeout.count();
  if (job.agent) {
    j["agent"] = {{"url", job.agent->url}, {"token", secret_json(job.agent->token)}};
  } else {
    j["agent"] = nullptr;
  }
  const auto& s = job.syncoid;
  j["syncoid"] = {{"path", s.path},
                  {"compress", s.compress},
                  {"source_bwlimit", s.source_bwlimit},
                  {"target_bwlimit", s.target_bwlimit},
                  {"identifier", s.identifier},
                  {"exclude", s.exclude},
                  {"create_bookmark", s.create_bookmark},
                  {"no_sync_snap", s.no_sync_snap},
                  {"sendoptions", s.sendoptions},
                  {"recvoptions", s.recvoptions},
                  {"extra_args", s.extra_args},
                  {"timeout", s.timeout.count()}};
  j["notifications"] = notifications_json(job.notifications);
  return j;
}

}  // namespace hozo
