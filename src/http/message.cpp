#include "hozo/http/message.hpp"

#include <fmt/format.h>

#include "hozo/util/strings.hpp"

namespace hozo::http {

namespace {

bool name_equals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]);
    const auto y = static_cast<unsigned char>(b[i]);
    if ((x >= 'A' && x <= 'Z' ? x | 0x20U : x) != (y >= 'A' && y <= 'Z' ? y | 0x20U : y)) return false;
  }
  return true;
}

bool has_crlf(std::string_view s) noexcept { return s.find_first_of("\r\n", 0) != std::string_view::npos || s.find('\0') != std::string_view::npos; }

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> Request::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (name_equals(key, name)) return value;
  }
  return std::nullopt;
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return value;
  }
  return std::nullopt;
}

bool Request::flag(std::string_view name) const {
  const auto v = query_param(name);
  return v && (*v == "1" || *v == "true" || *v == "yes");
}

std::string Request::param(std::string_view name) const {
  const auto it = params.find(std::string(name));
  return it == params.end() ? std::string() : it->second;
}

std::optional<std::string> Request::cookie(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (!name_equals(key, "cookie")) continue;
    for (auto& [k, v] : parse_cookies(value)) {
      if (k == name) return v;
    }
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> Request::form() const {
  const auto type = header("content-type");
  if (!type || !starts_with(to_lower(trim(*type)), "application/x-www-form-urlencoded")) return {};
  return parse_query(body);
}

Response Response::json(int status, const nlohmann::json& body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

Response Response::json_error(int status, std::string_view message) {
  return json(status, nlohmann::json{{"error", std::string(message)}});
}

Response Response::html(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::move(body);
  return r;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::streamed(int status, std::string content_type, BodyProducer producer) {
  Response r;
  r.status = status;
  r.content_type = std::move(content_type);
  r.stream = std::move(producer);
  return r;
}

Response& Response::header(std::string name, std::string value) {
  if (name.empty() || has_crlf(name) || name.find(':') != std::string::npos || has_crlf(value)) return *this;
  headers.emplace_back(std::move(name), std::move(value));
  return *this;
}

Response& Response::set_cookie(std::string_view name, std::string_view value, const CookieOptions& options) {
  // Cookie names are tokens; values must not carry separators (callers encode them).
  for (const char c : name) {
    if (c <= ' ' || c >= 0x7f || std::string_view("()<>@,;:\\\"/[]?={}").find(c) != std::string_view::npos) return *this;
  }
  for (const char c : value) {
    if (c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\') return *this;
  }
  std::string line = fmt::format("{}={}; Path={}", name, value, options.path);
  if (options.max_age_seconds) line += fmt::format("; Max-Age={}", *options.max_age_seconds);
  if (options.http_only) line += "; HttpOnly";
  if (options.secure) line += "; Secure";
  if (!options.same_site.empty()) line += "; SameSite=" + options.same_site;
  return header("Set-Cookie", std::move(line));
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto part : split(query, '&')) {
    if (part.empty()) continue;
    const auto eq = part.find('=');
    const auto raw_key = part.substr(0, eq);
    const auto raw_value = eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    out.emplace_back(percent_decode(raw_key, true).value_or(std::string(raw_key)),
                     percent_decode(raw_value, true).value_or(std::string(raw_value)));
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_cookies(std::string_view header_value) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto part : split(header_value, ';')) {
    part = trim(part);
    const auto eq = part.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    auto value = trim(part.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    out.emplace_back(std::string(trim(part.substr(0, eq))), std::string(value));
  }
  return out;
}

bool constant_time_equal(std::string_view given, std::string_view expected) noexcept {
  unsigned diff = given.size() == expected.size() ? 0U : 1U;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0U;
    diff |= static_cast<unsigned>(g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0U;
}

bool bearer_matches(std::string_view header_value, const Secret& token) noexcept {
  const std::string& expected = token.reveal();
  if (expected.empty()) return false;
  static constexpr std::string_view kPrefix = "Bearer ";
  if (header_value.size() < kPrefix.size()) return false;
  // The scheme is case-insensitive (RFC 7235); the prefix is not secret.
  if (!name_equals(header_value.substr(0, kPrefix.size()), kPrefix)) return false;
  return constant_time_equal(header_value.substr(kPrefix.size()), expected);
}

std::string_view status_text(int status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

}  // namespace hozo::http
