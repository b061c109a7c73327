#pragma once
// Internal to the state module (state.cpp, state_json.cpp): the helpers of its JSON converters.
// from_json reads only what is there (missing or null keys keep their defaults) and keeps unknown
// keys; a value of the wrong type throws nlohmann::json::type_error, which the store turns into
// "corrupt".

#include <algorithm>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hozo/state.hpp"

namespace hozo::state_json {

using nlohmann::json;

/// Reads `key` into `out` when present and not null; wrong types throw nlohmann::json::type_error.
template <typename T>
void read_field(const json& j, const char* key, T& out) {
  const auto it = j.find(key);
  if (it != j.end() && !it->is_null()) it->get_to(out);
}

template <typename T>
void read_field(const json& j, const char* key, std::optional<T>& out) {
  const auto it = j.find(key);
  if (it != j.end() && !it->is_null()) out = it->get<T>();
}

[[noreturn]] inline void shape_error(const json& j, std::string_view what) {
  throw json::type_error::create(302, fmt::format("{} (got {})", what, j.type_name()), &j);
}

inline void require_object(const json& j, std::string_view what) {
  if (!j.is_object()) shape_error(j, fmt::format("{} must be an object", what));
}

/// The keys of `j` that are not in `known`, to be written back unchanged.
inline json unknown_keys(const json& j, std::initializer_list<std::string_view> known) {
  json extra = json::object();
  for (const auto& [key, value] : j.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) extra[key] = value;
  }
  return extra;
}

/// What read_summaries_fast read: the summary's jobs and its format version.
struct FastSummaries {
  std::map<std::string, JobSummary> jobs;
  int version = 1;
};

/// The jobs of a summary file (version 2 or newer) read with simdjson's On-Demand parser, ~10 times
/// faster than nlohmann's. nullopt when the text holds anything the nlohmann converters might read
/// differently (an unknown or duplicate key, a version-1 job, an unusual type, a syntax error): the
/// caller then reads it with those, which also word any error.
std::optional<FastSummaries> read_summaries_fast(const std::string& text);

/// Starts an output object from the unknown keys kept at read time.
inline json start_object(const json& extra) { return extra.is_object() ? extra : json::object(); }

}  // namespace hozo::state_json
