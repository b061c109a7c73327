#include "hozo/agent.hpp"

#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hozo/curl_api.hpp"
#include "hozo/util/strings.hpp"

namespace hozo {

using json = nlohmann::json;

namespace {

Result<json> parse_object(std::string_view body, std::string_view what) {
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return make_error("agent {}: answer is not JSON: '{}'", what, printable(body.substr(0, 80)));
  }
  if (!doc.is_object()) return make_error("agent {}: answer is not a JSON object", what);
  return doc;
}

/// Typed field access that turns every mismatch into a message.
class Fields {
 public:
  Fields(const json& obj, std::string_view what) : obj_(obj), what_(what) {}

  Result<std::string> str(const char* key, bool required = true) const {
    const auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) {
      if (required) return make_error("agent {}: missing '{}'", what_, key);
      return std::string();
    }
    if (!it->is_string()) return make_error("agent {}: '{}' is not a string", what_, key);
    return it->get<std::string>();
  }
  Result<std::uint64_t> u64(const char* key) const {
    const auto it = obj_.find(key);
    if (it == obj_.end()) return make_error("agent {}: missing '{}'", what_, key);
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0)) {
      return make_error("agent {}: '{}' is not a non-negative integer", what_, key);
    }
    return it->get<std::uint64_t>();
  }
  Result<std::int64_t> i64(const char* key) const {
    const auto it = obj_.find(key);
    if (it == obj_.end()) return make_error("agent {}: missing '{}'", what_, key);
    if (!it->is_number_integer()) return make_error("agent {}: '{}' is not an integer", what_, key);
    return it->get<std::int64_t>();
  }

 private:
  const json& obj_;
  std::string_view what_;
};

Result<SpinState> spin_state_from(std::string_view text, std::string_view what) {
  if (text == "active") return SpinState::active;
  if (text == "standby") return SpinState::standby;
  if (text == "sleeping") return SpinState::sleeping;
  if (text == "unknown") return SpinState::unknown;
  return make_error("agent {}: unknown disk state '{}'", what, printable(text.substr(0, 40)));
}

#define HOZO_TRY(var, expr)                                \
  auto var##_r = (expr);                                   \
  if (!var##_r) return std::move(var##_r).error();         \
  auto var = std::move(var##_r).value()

std::size_t write_body(char* data, std::size_t size, std::size_t count, void* user) noexcept {
  auto* sink = static_cast<std::pair<std::string*, std::size_t>*>(user);
  const std::size_t n = size * count;
  if (sink->first->size() + n > sink->second) return 0;  // too large: abort the transfer
  sink->first->append(data, n);
  return n;
}

std::string error_field(const std::string& body) {
  json doc = json::parse(body, nullptr, false);
  if (doc.is_object()) {
    const auto it = doc.find("error");
    if (it != doc.end() && it->is_string()) return printable(it->get<std::string>().substr(0, 200));
  }
  return {};
}

}  // namespace

const AgentPool* AgentStatus::find_pool(std::string_view name) const {
  for (const auto& pool : pools) {
    if (pool.name == name) return &pool;
  }
  return nullptr;
}

Result<AgentPing> parse_agent_ping(std::string_view body) {
  HOZO_TRY(doc, parse_object(body, "/ping"));
  const Fields f(doc, "/ping");
  AgentPing ping;
  HOZO_TRY(status, f.str("status"));
  HOZO_TRY(uptime, f.i64("uptime"));
  HOZO_TRY(version, f.str("version", false));
  ping.status = std::move(status);
  ping.uptime = uptime;
  ping.version = std::move(version);
  return ping;
}

Result<AgentStatus> parse_agent_status(std::string_view body) {
  HOZO_TRY(doc, parse_object(body, "/status"));
  AgentStatus status;
  const auto pools = doc.find("pools");
  if (pools == doc.end() || !pools->is_array()) return make_error("agent /status: 'pools' is missing or not a list");
  for (const auto& item : *pools) {
    if (!item.is_object()) return make_error("agent /status: a pool entry is not an object");
    const Fields f(item, "/status pool");
    AgentPool pool;
    HOZO_TRY(name, f.str("name"));
    HOZO_TRY(health, f.str("health"));
    HOZO_TRY(size, f.u64("size"));
    HOZO_TRY(alloc, f.u64("alloc"));
    HOZO_TRY(free, f.u64("free"));
    HOZO_TRY(state, f.str("state", false));
    HOZO_TRY(scan, f.str("scan", false));
    HOZO_TRY(errors, f.str("errors", false));
    pool.name = std::move(name);
    pool.health = std::move(health);
    pool.size = size;
    pool.alloc = alloc;
    pool.free = free;
    pool.state = std::move(state);
    pool.scan = std::move(scan);
    pool.errors = std::move(errors);
    status.pools.push_back(std::move(pool));
  }
  if (const auto up = doc.find("uptime"); up != doc.end() && up->is_number()) status.uptime = up->get<double>();
  if (const auto load = doc.find("load"); load != doc.end() && load->is_array()) {
    for (const auto& v : *load) {
      if (!v.is_number()) return make_error("agent /status: 'load' holds a non-number");
      status.load.push_back(v.get<double>());
    }
  }
  if (const auto rr = doc.find("receive_running"); rr != doc.end()) {
    if (!rr->is_boolean()) return make_error("agent /status: 'receive_running' is not a boolean");
    status.receive_running = rr->get<bool>();
  }
  const Fields f(doc, "/status");
  HOZO_TRY(version, f.str("version", false));
  status.version = std::move(version);
  return status;
}

Result<AgentDiskState> parse_agent_disk(std::string_view body) {
  HOZO_TRY(doc, parse_object(body, "/disk"));
  const Fields f(doc, "/disk");
  AgentDiskState disk;
  HOZO_TRY(device, f.str("device"));
  HOZO_TRY(path, f.str("path", false));
  HOZO_TRY(state_text, f.str("state"));
  HOZO_TRY(state, spin_state_from(state_text, "/disk"));
  HOZO_TRY(state_error, f.str("state_error", false));
  disk.device = std::move(device);
  disk.path = std::move(path);
  disk.state = state;
  disk.state_error = std::move(state_error);
  if (const auto rot = doc.find("rotational"); rot != doc.end() && !rot->is_null()) {
    if (!rot->is_boolean()) return make_error("agent /disk: 'rotational' is not a boolean");
    disk.rotational = rot->get<bool>();
  }
  if (const auto reads = doc.find("reads"); reads != doc.end() && !reads->is_null()) {
    HOZO_TRY(value, f.u64("reads"));
    disk.reads = value;
  }
  return disk;
}

Result<AgentSpinup> parse_agent_spinup(std::string_view body) {
  HOZO_TRY(doc, parse_object(body, "/spinup"));
  const Fields f(doc, "/spinup");
  AgentSpinup spin;
  HOZO_TRY(device, f.str("device"));
  HOZO_TRY(before_text, f.str("before", false));
  HOZO_TRY(state_text, f.str("state"));
  HOZO_TRY(state, spin_state_from(state_text, "/spinup"));
  spin.device = std::move(device);
  spin.state = state;
  if (!before_text.empty()) {
    HOZO_TRY(before, spin_state_from(before_text, "/spinup"));
    spin.before = before;
  }
  if (doc.contains("waited_ms")) {
    HOZO_TRY(waited, f.i64("waited_ms"));
    spin.waited_ms = waited;
  }
  return spin;
}

AgentClient::AgentClient(std::string url, Secret token, AgentClientOptions options)
    : url_(std::move(url)), token_(std::move(token)), options_(options) {
  while (!url_.empty() && url_.back() == '/') url_.pop_back();
}

Result<AgentClient::Response> AgentClient::request(const char* method, const std::string& path_and_query, bool auth,
                                                   std::chrono::milliseconds extra_timeout) {
  if (!starts_with(url_, "http://") && !starts_with(url_, "https://")) {
    return make_error(ExitCode::config, "agent url '{}' must start with http:// or https://", printable(url_));
  }
  if (auth && token_.empty()) return make_error(ExitCode::config, "agent {}: no token configured", url_);
  if (auto lib = curl::load(); !lib) return make_error(lib.error().code, "agent {}: {}", url_, lib.error().message);
  const std::unique_ptr<CURL, decltype(&curl::easy_cleanup)> handle(curl::easy_init(), &curl::easy_cleanup);
  if (!handle) return make_error("curl_easy_init failed");
  struct SlistDeleter {
    void operator()(curl_slist* l) const noexcept { curl::slist_free_all(l); }
  };
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto append = [&](const std::string& h) {
    curl_slist* next = curl::slist_append(headers.get(), h.c_str());
    if (next != nullptr) {
      (void)headers.release();
      headers.reset(next);
    }
  };
  append("Accept: application/json");
  if (auth) append("Authorization: Bearer " + token_.reveal());

  Response response;
  std::pair<std::string*, std::size_t> sink{&response.body, options_.max_response};
  const std::string full = url_ + path_and_query;
  const long connect_ms = static_cast<long>(options_.connect_timeout.count());
  const long total_ms = static_cast<long>((options_.request_timeout + extra_timeout).count());
  CURL* h = handle.get();
  curl::easy_setopt(h, CURLOPT_URL, full.c_str());
  curl::easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl::easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl::easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl::easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms);
  curl::easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl::easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl::easy_setopt(h, CURLOPT_WRITEFUNCTION, &write_body);
  curl::easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl::easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options_.max_response));
  if (std::string_view(method) == "POST") {
    curl::easy_setopt(h, CURLOPT_POST, 1L);
    curl::easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl::easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
  }
  const CURLcode rc = curl::easy_perform(h);
  if (rc != CURLE_OK) {
    const ExitCode code = rc == CURLE_WRITE_ERROR || rc == CURLE_FILESIZE_EXCEEDED ? ExitCode::failure
                                                                                   : ExitCode::unavailable;
    if (code == ExitCode::failure) {
      return make_error("agent {} {}: answer larger than {} bytes", url_, path_and_query, options_.max_response);
    }
    return make_error(code, "agent {} {}: {}", url_, path_and_query, curl::easy_strerror(rc));
  }
  curl::easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

namespace {

Error http_error(const std::string& url, std::string_view what, long status, const std::string& body) {
  const std::string detail = error_field(body);
  const std::string suffix = detail.empty() ? std::string() : ": " + detail;
  if (status == 401) return make_error("agent {} {}: token rejected (401){}", url, what, suffix);
  if (status == 409) return make_error(ExitCode::tempfail, "agent {} {}: busy (409){}", url, what, suffix);
  return make_error("agent {} {}: HTTP {}{}", url, what, status, suffix);
}

}  // namespace

Result<AgentPing> AgentClient::ping() {
  HOZO_TRY(res, request("GET", "/ping", false));
  if (res.status != 200) return http_error(url_, "/ping", res.status, res.body);
  return parse_agent_ping(res.body);
}

Result<AgentStatus> AgentClient::status() {
  HOZO_TRY(res, request("GET", "/status", true));
  if (res.status != 200) return http_error(url_, "/status", res.status, res.body);
  return parse_agent_status(res.body);
}

Result<std::string> AgentClient::disk_path(std::string_view dev) const {
  static constexpr std::string_view kById = "/dev/disk/by-id/";
  if (starts_with(dev, kById)) {
    const auto id = dev.substr(kById.size());
    if (auto valid = validate_disk_id(id); !valid) return std::move(valid).error();
    std::string escaped;  // the id charset only needs '+' escaped (a query '+' means space)
    for (const char c : id) escaped += c == '+' ? std::string("%2B") : std::string(1, c);
    return "/disk/by-id?id=" + escaped;
  }
  if (starts_with(dev, "/dev/")) dev.remove_prefix(5);
  if (auto valid = validate_block_device_name(dev); !valid) return std::move(valid).error();
  return "/disk/" + std::string(dev);
}

Result<AgentDiskState> AgentClient::disk_state(std::string_view dev) {
  HOZO_TRY(path, disk_path(dev));
  HOZO_TRY(res, request("GET", path, true));
  if (res.status != 200) return http_error(url_, "/disk", res.status, res.body);
  return parse_agent_disk(res.body);
}

Result<std::optional<AgentDiskState>> AgentClient::find_disk(std::string_view dev) {
  HOZO_TRY(path, disk_path(dev));
  HOZO_TRY(res, request("GET", path, true));
  if (res.status == 400) return std::optional<AgentDiskState>();
  if (res.status != 200) return http_error(url_, "/disk", res.status, res.body);
  HOZO_TRY(state, parse_agent_disk(res.body));
  return std::optional<AgentDiskState>(std::move(state));
}

Result<AgentSpinup> AgentClient::spinup(std::string_view dev, std::chrono::seconds timeout) {
  HOZO_TRY(path, disk_path(dev));
  const auto q = path.find('?');
  std::string target = q == std::string::npos ? path + "/spinup" : path.substr(0, q) + "/spinup" + path.substr(q);
  target += (q == std::string::npos ? "?" : "&") + fmt::format("timeout={}", timeout.count());
  HOZO_TRY(res, request("POST", target, true, std::chrono::duration_cast<std::chrono::milliseconds>(timeout)));
  if (res.status != 200) return http_error(url_, "/spinup", res.status, res.body);
  return parse_agent_spinup(res.body);
}

Result<void> AgentClient::shutdown(bool force) {
  HOZO_TRY(res, request("POST", force ? "/shutdown?force=1" : "/shutdown", true));
  if (res.status != 202) return http_error(url_, "/shutdown", res.status, res.body);
  return ok();
}

#undef HOZO_TRY

}  // namespace hozo
