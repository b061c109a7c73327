// `hozo check`'s pure parts: the report (rows, text and JSON), the Wake-on-LAN address check
// against the local interfaces, and the parsers of `zfs allow` and of send-size estimates. Running
// the checks against a box is check.cpp.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hozo/check.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/wol.hpp"
#include "hozo/zfs.hpp"

namespace hozo {

namespace {

int prefix_length(std::uint32_t mask) {
  int n = 0;
  while (n < 32 && (mask & (0x80000000U >> n)) != 0) ++n;
  return n;
}

std::uint32_t broadcast_of(const Ipv4Address& a) {
  return a.broadcast != 0 ? a.broadcast : (a.address | ~a.netmask);
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  s = trim(s);
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}


/// The first non-blank line of `text`, trimmed.
std::string_view first_nonblank_line(std::string_view text) {
  for (const auto line : split_lines(text)) {
    if (!trim(line).empty()) return trim(line);
  }
  return {};
}

}  // namespace

// ------------------------------------------------------------------ rows and output

std::string_view to_string(CheckStatus status) noexcept {
  switch (status) {
    case CheckStatus::ok: return "ok";
    case CheckStatus::warn: return "warn";
    case CheckStatus::fail: return "fail";
    case CheckStatus::skipped: return "skipped";
  }
  return "?";
}

std::string_view check_symbol(CheckStatus status) noexcept {
  switch (status) {
    case CheckStatus::ok: return "✓";
    case CheckStatus::warn: return "!";
    case CheckStatus::fail: return "✗";
    case CheckStatus::skipped: return "-";
  }
  return "?";
}

bool CheckReport::ok() const noexcept {
  return !interrupted && std::none_of(rows.begin(), rows.end(), [](const CheckRow& r) { return r.status == CheckStatus::fail; });
}

nlohmann::json to_json(const CheckReport& report) {
  auto rows = nlohmann::json::array();
  for (const auto& r : report.rows) {
    rows.push_back({{"name", r.name}, {"status", std::string(to_string(r.status))}, {"detail", r.detail}, {"fix", r.fix}});
  }
  return {{"job", report.job},
          {"ok", report.ok()},
          {"woke", report.woke},
          {"powered_off", report.powered_off},
          {"interrupted", report.interrupted},
          {"rows", rows}};
}

std::string format_report(const CheckReport& report) {
  std::size_t width = 0;
  for (const auto& r : report.rows) width = std::max(width, r.name.size());
  std::string out = fmt::format("{}:\n", report.job);
  std::size_t failed = 0;
  std::size_t warned = 0;
  for (const auto& r : report.rows) {
    out += fmt::format("  {} {:<{}}  {}\n", check_symbol(r.status), r.name, width, r.detail);
    if ((r.status == CheckStatus::fail || r.status == CheckStatus::warn) && !r.fix.empty()) {
      out += fmt::format("    {:<{}}  fix: {}\n", "", width, r.fix);
    }
    failed += r.status == CheckStatus::fail ? 1 : 0;
    warned += r.status == CheckStatus::warn ? 1 : 0;
  }
  out += fmt::format("{}: {} ({} failed, {} warning(s)){}\n", report.job, report.ok() ? "OK" : "NOT OK", failed, warned,
                     report.interrupted ? ", interrupted" : "");
  return out;
}

// ------------------------------------------------------------------ WOL settings

std::vector<LocalInterface> list_local_interfaces() {
  std::vector<LocalInterface> result;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return result;
  for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_name == nullptr) continue;
    auto it = std::find_if(result.begin(), result.end(), [&](const LocalInterface& i) { return i.name == a->ifa_name; });
    if (it == result.end()) {
      result.push_back(LocalInterface{a->ifa_name, (a->ifa_flags & IFF_UP) != 0, (a->ifa_flags & IFF_LOOPBACK) != 0, {}});
      it = std::prev(result.end());
    }
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    const auto to_host = [](const sockaddr* sa) -> std::uint32_t {
      if (sa == nullptr || sa->sa_family != AF_INET) return 0;
      sockaddr_in in{};
      std::memcpy(&in, sa, sizeof in);
      return ntohl(in.sin_addr.s_addr);
    };
    Ipv4Address ip;
    ip.address = to_host(a->ifa_addr);
    ip.netmask = to_host(a->ifa_netmask);
    if ((a->ifa_flags & IFF_BROADCAST) != 0) ip.broadcast = to_host(a->ifa_broadaddr);
    it->ipv4.push_back(ip);
  }
  ::freeifaddrs(list);
  return result;
}

std::optional<std::uint32_t> parse_ipv4(std::string_view text) noexcept {
  std::uint32_t value = 0;
  int parts = 0;
  std::size_t i = 0;
  while (parts < 4) {
    std::size_t digits = 0;
    unsigned part = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && digits < 4) {
      part = part * 10 + static_cast<unsigned>(text[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0 || digits > 3 || part > 255) return std::nullopt;
    value = (value << 8) | part;
    ++parts;
    if (parts < 4) {
      if (i >= text.size() || text[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (i != text.size()) return std::nullopt;
  return value;
}

std::string format_ipv4(std::uint32_t a) {
  return fmt::format("{}.{}.{}.{}", (a >> 24) & 0xFFU, (a >> 16) & 0xFFU, (a >> 8) & 0xFFU, a & 0xFFU);
}

CheckRow check_wol_settings(const Job& job, const std::vector<LocalInterface>& interfaces) {
  CheckRow row{"wol settings", CheckStatus::ok, "", ""};
  const std::string target = fmt::format("{}:{}", job.wol_broadcast, job.wol_port);
  std::vector<std::string> names;
  for (const auto& i : interfaces) names.push_back(i.name);
  const LocalInterface* chosen = nullptr;
  if (!job.wol_interface.empty()) {
    const auto it = std::find_if(interfaces.begin(), interfaces.end(),
                                 [&](const LocalInterface& i) { return i.name == job.wol_interface; });
    if (it == interfaces.end()) {
      return {row.name, CheckStatus::fail, fmt::format("wol_interface {} does not exist here", job.wol_interface),
              fmt::format("set wol_interface to one of: {} (or remove it)", names.empty() ? "-" : join(names, ", "))};
    }
    chosen = &*it;
  }
  const std::string via = chosen != nullptr ? fmt::format(" via {}", chosen->name) : "";
  const auto down_warning = [&](CheckRow r) {
    if (chosen != nullptr && !chosen->up && r.status == CheckStatus::ok) {
      r.status = CheckStatus::warn;
      r.detail += fmt::format("; but {} is down", chosen->name);
      r.fix = fmt::format("bring {} up (ip link set {} up) or change wol_interface", chosen->name, chosen->name);
    }
    return r;
  };
  if (job.wol_broadcast == "255.255.255.255") {
    row.detail = fmt::format("limited broadcast {}{}", target, via);
    return down_warning(row);
  }
  const auto ip = parse_ipv4(job.wol_broadcast);
  if (!ip) {
    return {row.name, CheckStatus::warn,
            fmt::format("wol_broadcast {} is a host name; cannot tell whether it is a local broadcast", job.wol_broadcast),
            "use 255.255.255.255 or the broadcast address of the box's subnet"};
  }
  std::vector<std::string> broadcasts;
  const CheckRow* unicast = nullptr;
  CheckRow unicast_row;
  const LocalInterface* match_elsewhere = nullptr;
  for (const auto& i : interfaces) {
    if (i.loopback) continue;
    for (const auto& a : i.ipv4) {
      const auto b = broadcast_of(a);
      const std::string subnet = fmt::format("{}/{}", format_ipv4(a.address & a.netmask), prefix_length(a.netmask));
      broadcasts.push_back(fmt::format("{} ({})", format_ipv4(b), i.name));
      if (b == *ip) {
        if (chosen != nullptr && chosen != &i) {
          match_elsewhere = &i;
          continue;
        }
        row.detail = fmt::format("directed broadcast {} of {}'s subnet {}{}", target, i.name, subnet, via);
        return down_warning(row);
      }
      if ((a.address & a.netmask) == (*ip & a.netmask) && unicast == nullptr) {
        unicast_row = {row.name, CheckStatus::warn,
                       fmt::format("wol_broadcast {} is a unicast address on {}'s subnet {}", job.wol_broadcast, i.name, subnet),
                       fmt::format("a sleeping box may have no ARP entry: use {} (the subnet's broadcast) or "
                                   "255.255.255.255", format_ipv4(b))};
        unicast = &unicast_row;
      }
    }
  }
  if (match_elsewhere != nullptr) {
    return {row.name, CheckStatus::warn,
            fmt::format("{} is the broadcast of {}'s subnet, but wol_interface is {}", job.wol_broadcast,
                        match_elsewhere->name, job.wol_interface),
            fmt::format("set wol_interface to {} or remove it", match_elsewhere->name)};
  }
  if (unicast != nullptr) return *unicast;
  return {row.name, CheckStatus::fail,
          fmt::format("wol_broadcast {} is not the broadcast address of a local subnet (local: {}); routers do not "
                      "forward directed broadcasts",
                      job.wol_broadcast, broadcasts.empty() ? "none" : join(broadcasts, ", ")),
          "set wol_broadcast to 255.255.255.255 or the broadcast address of the box's subnet, or wake it through "
          "wol_relay (a host on the box's LAN)"};
}

// ------------------------------------------------------------------ zfs allow

const std::vector<std::string>& required_receive_permissions() {
  static const std::vector<std::string> perms{"create", "mount", "receive"};
  return perms;
}

const std::vector<std::string>& recommended_receive_permissions() {
  static const std::vector<std::string> perms{"destroy", "rollback"};
  return perms;
}

Result<std::set<std::string>> parse_zfs_allow(std::string_view output, std::string_view dataset,
                                              const AllowSubject& subject) {
  enum class Kind { none, sets, create_time, local, descendent, local_descendent };
  struct Grant {
    std::string on;
    Kind kind;
    std::vector<std::string> perms;
  };
  std::vector<Grant> grants;
  std::map<std::string, std::vector<std::string>> sets;  // "@name" -> permissions (from any section)
  std::string section;
  Kind kind = Kind::none;
  int number = 0;
  const auto perms_of = [](std::string_view list) {
    std::vector<std::string> out;
    for (const auto p : split(list, ',')) {
      if (!trim(p).empty()) out.emplace_back(trim(p));
    }
    return out;
  };
  for (const auto raw : split_lines(output)) {
    ++number;
    const auto line = std::string_view(raw);
    if (trim(line).empty()) continue;
    if (starts_with(line, "---- Permissions on ")) {
      auto rest = line.substr(std::string_view("---- Permissions on ").size());
      const auto end = rest.find(' ');
      section = std::string(rest.substr(0, end));
      kind = Kind::none;
      continue;
    }
    if (line.front() != ' ' && line.front() != '\t') {
      const auto heading = trim(line);
      if (heading == "Permission sets:") kind = Kind::sets;
      else if (heading == "Create time permissions:") kind = Kind::create_time;
      else if (heading == "Local permissions:") kind = Kind::local;
      else if (heading == "Descendent permissions:") kind = Kind::descendent;
      else if (heading == "Local+Descendent permissions:") kind = Kind::local_descendent;
      else return make_error("zfs allow output line {}: unexpected \"{}\"", number, printable(heading));
      continue;
    }
    if (section.empty()) return make_error("zfs allow output line {}: permissions before a \"---- Permissions on\" line", number);
    std::vector<std::string> words;  // split at blanks and tabs
    std::string word;
    for (const char c : trim(line)) {
      if (c == ' ' || c == '\t') {
        if (!word.empty()) words.push_back(std::move(word));
        word.clear();
      } else {
        word += c;
      }
    }
    if (!word.empty()) words.push_back(std::move(word));
    if (kind == Kind::sets) {
      if (words.size() == 2 && words[0].starts_with("@")) sets[words[0]] = perms_of(words[1]);
      continue;
    }
    if (kind == Kind::create_time || kind == Kind::none) continue;
    bool applies = false;
    std::string list;
    if (words.size() == 2 && words[0] == "everyone") {
      applies = true;
      list = words[1];
    } else if (words.size() == 3 && words[0] == "user") {
      applies = words[1] == subject.user;
      list = words[2];
    } else if (words.size() == 3 && words[0] == "group") {
      applies = std::find(subject.groups.begin(), subject.groups.end(), words[1]) != subject.groups.end();
      list = words[2];
    } else {
      return make_error("zfs allow output line {}: unexpected entry \"{}\"", number, printable(trim(line)));
    }
    if (applies) grants.push_back(Grant{section, kind, perms_of(list)});
  }
  std::set<std::string> effective;
  const std::function<void(const std::string&, int)> add = [&](const std::string& p, int depth) {
    if (!p.starts_with("@")) {
      effective.insert(p);
      return;
    }
    const auto it = sets.find(p);
    if (it == sets.end() || depth > 8) return;
    for (const auto& q : it->second) add(q, depth + 1);
  };
  for (const auto& g : grants) {
    const bool self = g.on == dataset;
    const bool ancestor = dataset.size() > g.on.size() && starts_with(dataset, g.on) && dataset[g.on.size()] == '/';
    const bool counts = (self && (g.kind == Kind::local || g.kind == Kind::local_descendent)) ||
                        (ancestor && (g.kind == Kind::descendent || g.kind == Kind::local_descendent));
    if (!counts) continue;
    for (const auto& p : g.perms) add(p, 0);
  }
  return effective;
}

// ------------------------------------------------------------------ send size

std::optional<std::uint64_t> parse_property_u64(std::string_view output) { return parse_u64(first_nonblank_line(output)); }

std::optional<std::uint64_t> parse_send_size(std::string_view output) {
  std::optional<std::uint64_t> size;
  for (const auto line : split_lines(output)) {
    const auto fields = split(trim(line), '\t');
    if (fields.size() == 2 && fields[0] == "size") {
      if (auto v = parse_u64(fields[1])) size = v;
    }
  }
  return size;
}

}  // namespace hozo
