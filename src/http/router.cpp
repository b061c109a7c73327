#include "hozo/http/router.hpp"

#include <algorithm>

#include "hozo/util/strings.hpp"

namespace hozo::http {

namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  for (auto part : split(path, '/')) out.emplace_back(part);
  return out;
}

bool is_param(const std::string& seg) { return seg.size() > 2 && seg.front() == '{' && seg.back() == '}'; }
bool is_rest(const std::string& seg) { return is_param(seg) && seg[seg.size() - 2] == '*'; }
std::string param_name(const std::string& seg) {
  return seg.substr(1, seg.size() - (is_rest(seg) ? 3 : 2));
}

std::string decode(std::string_view raw) { return percent_decode(raw).value_or(std::string(raw)); }

/// Matches pattern[pi..] against path[si..]; fills params (raw, decoded later).
bool match_from(const std::vector<std::string>& pattern, std::size_t pi, const std::vector<std::string>& path,
                std::size_t si, std::map<std::string, std::string>& params) {
  if (pi == pattern.size()) return si == path.size();
  const auto& seg = pattern[pi];
  if (is_rest(seg)) {
    // One or more segments; shortest first so a literal suffix ("spinup") can still match.
    for (std::size_t end = si + 1; end <= path.size(); ++end) {
      std::map<std::string, std::string> trial = params;
      std::string joined;
      for (std::size_t k = si; k < end; ++k) joined += (k == si ? "" : "/") + path[k];
      trial[param_name(seg)] = joined;
      if (match_from(pattern, pi + 1, path, end, trial)) {
        params = std::move(trial);
        return true;
      }
    }
    return false;
  }
  if (si == path.size()) return false;
  if (is_param(seg)) {
    params[param_name(seg)] = path[si];
  } else if (seg != path[si]) {
    return false;
  }
  return match_from(pattern, pi + 1, path, si + 1, params);
}

}  // namespace

void Router::add(std::string method, std::string_view pattern, Handler handler, RouteOptions options) {
  routes_.push_back(Route{std::move(method), split_path(pattern), std::move(handler), std::move(options)});
}

void Router::get(std::string_view pattern, Handler handler, RouteOptions options) {
  add("GET", pattern, std::move(handler), std::move(options));
}

void Router::post(std::string_view pattern, Handler handler, RouteOptions options) {
  add("POST", pattern, std::move(handler), std::move(options));
}

Match Router::match(std::string_view method, std::string_view raw_path) const {
  Match result;
  result.status = 404;
  const auto path = split_path(raw_path);
  std::vector<std::string> allowed;
  for (const auto& route : routes_) {
    std::map<std::string, std::string> params;
    if (!match_from(route.segments, 0, path, 0, params)) continue;
    const bool method_ok = route.method == method || (method == "HEAD" && route.method == "GET");
    if (!method_ok) {
      if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) allowed.push_back(route.method);
      continue;
    }
    result.handler = &route.handler;
    result.options = &route.options;
    for (auto& [name, raw] : params) result.params[name] = decode(raw);
    result.status = 200;
    return result;
  }
  if (!allowed.empty()) {
    result.status = 405;
    result.allow = join(allowed, ", ");
  }
  return result;
}

}  // namespace hozo::http
