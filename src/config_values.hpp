#pragma once
// Private to the config module (src/config*.cpp): the small value checks of config.cpp's key
// tables. Each check returns an error message, or nullopt when the value is fine.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hozo::config_detail {

/// A value check: an error message, or nullopt when the value is fine.
using Check = std::optional<std::string> (*)(std::string_view);

std::string show(std::string_view v);
bool is_alnum(char c);
bool is_hex(char c);
bool all_of(std::string_view s, std::string_view extra);
std::optional<std::string> check_job_name(std::string_view v);
std::optional<std::string> normalize_mac(std::string_view v);
std::optional<std::string> check_mac(std::string_view v);
std::optional<std::string> check_secureon(std::string_view v);
std::optional<std::string> check_dataset(std::string_view v);
bool is_hostname(std::string_view v);
bool is_ip_literal(std::string_view v);
bool looks_like_ipv4(std::string_view v);
std::optional<std::string> check_host(std::string_view v);
std::optional<std::string> check_optional_host(std::string_view v);
std::optional<std::string> check_user(std::string_view v);
std::optional<std::string> check_path(std::string_view v);
std::optional<std::string> check_abs_path(std::string_view v);
std::optional<std::string> check_abs_dir(std::string_view v);
std::optional<std::string> check_optional_abs_path(std::string_view v);
std::optional<std::string> check_device(std::string_view v);
std::optional<std::string> check_schedule(std::string_view v);
std::optional<std::string> check_url(std::string_view v);
std::optional<std::string> check_optional_url(std::string_view v);
std::optional<std::string> check_interface(std::string_view v);
std::optional<std::string> check_ntfy_topic(std::string_view v);
std::optional<std::string> check_token(std::string_view v);
std::optional<std::string> check_pushover_key(std::string_view v);
std::optional<std::string> check_email(std::string_view v);
std::optional<std::string> check_bwlimit(std::string_view v);
std::optional<std::string> check_identifier(std::string_view v);
const std::vector<std::string>& compress_methods();
std::optional<std::string> check_compress(std::string_view v);
std::optional<std::string> check_program(std::string_view v);
std::optional<std::string> check_nonempty(std::string_view v);

}  // namespace hozo::config_detail
