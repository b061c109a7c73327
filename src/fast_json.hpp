#pragma once
// Internal (state_json.cpp, config_cache.cpp): readers of JSON files hozo wrote itself, with
// simdjson's On-Demand parser, ~10 times faster than building nlohmann's document first. A reader
// comes from the same field list as the type's nlohmann converters (HOZO_FAST_READ). It accepts only
// what those converters read the same way; on anything else (an unknown or duplicate key, a number
// of another kind, a syntax error) it returns false and the caller reads the text with nlohmann.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <simdjson.h>

namespace hozo::fast_json {

namespace od = simdjson::ondemand;

/// Reads one record; defined for each type by HOZO_FAST_READ.
template <typename T>
bool fast_read(od::value v, T& out);

inline bool fast_value(od::value v, std::string& out) {
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) return false;
  out.assign(s);
  return true;
}
inline bool fast_value(od::value v, std::filesystem::path& out) {
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) return false;
  out = std::filesystem::path(s);
  return true;
}
inline bool fast_value(od::value v, bool& out) { return v.get_bool().get(out) == simdjson::SUCCESS; }
inline bool fast_value(od::value v, double& out) { return v.get_double().get(out) == simdjson::SUCCESS; }

/// Integers only as integers in range: nlohmann would also convert 1.5 or -1 (into an unsigned).
template <typename T>
  requires std::is_integral_v<T> && (!std::is_same_v<T, bool>)
bool fast_value(od::value v, T& out) {
  if constexpr (std::is_signed_v<T>) {
    std::int64_t n = 0;
    if (v.get_int64().get(n) != simdjson::SUCCESS) return false;
    if (n < std::numeric_limits<T>::min() || n > std::numeric_limits<T>::max()) return false;
    out = static_cast<T>(n);
  } else {
    std::uint64_t n = 0;
    if (v.get_uint64().get(n) != simdjson::SUCCESS || n > std::numeric_limits<T>::max()) return false;
    out = static_cast<T>(n);
  }
  return true;
}

inline bool fast_value(od::value v, std::chrono::seconds& out) {
  std::int64_t n = 0;
  if (!fast_value(v, n)) return false;
  out = std::chrono::seconds(n);
  return true;
}

/// An enum by its nlohmann converter (NLOHMANN_JSON_SERIALIZE_ENUM or a hand-written one).
template <typename T>
  requires std::is_enum_v<T>
bool fast_value(od::value v, T& out) {
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) return false;
  try {
    out = nlohmann::json(s).get<T>();
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return true;
}

template <typename T>
  requires std::is_class_v<T>
bool fast_value(od::value v, T& out) {
  return fast_read(v, out);
}

/// Replaces the vector, as nlohmann's get_to does.
template <typename T>
bool fast_value(od::value v, std::vector<T>& out) {
  od::array array;
  if (v.get_array().get(array) != simdjson::SUCCESS) return false;
  std::vector<T> items;
  for (auto element : array) {
    od::value item;
    if (element.get(item) != simdjson::SUCCESS || !fast_value(item, items.emplace_back())) return false;
  }
  out = std::move(items);
  return true;
}

/// null is the empty optional (as the converters of both callers read it).
template <typename T>
bool fast_value(od::value v, std::optional<T>& out) {
  bool null = false;
  if (v.is_null().get(null) != simdjson::SUCCESS) return false;
  if (null) {
    out.reset();
    return true;
  }
  T value;
  if (!fast_value(v, value)) return false;
  out = std::move(value);
  return true;
}

/// Walks an object's fields; `match(key, value, seen)` reads a known one and returns false for any
/// other (`seen`: a bit per field, for the caller to refuse a duplicate key).
template <typename Match>
bool fast_object(od::value v, Match&& match) {
  od::object object;
  if (v.get_object().get(object) != simdjson::SUCCESS) return false;
  std::uint64_t seen = 0;
  for (auto field : object) {
    std::string_view key;
    od::value value;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS || field.value().get(value) != simdjson::SUCCESS) {
      return false;
    }
    if (!match(key, value, seen)) return false;
  }
  return true;
}

/// Whether the document was read to its end (simdjson 3.0 has no document::at_end(): past the end,
/// current_location() is OUT_OF_BOUNDS).
inline bool at_end(od::document& doc) {
  const char* location = nullptr;
  return doc.current_location().get(location) == simdjson::OUT_OF_BOUNDS;
}

}  // namespace hozo::fast_json

// Each HOZO_FAST_GET compares the key with one field; `bit` counts the fields passed, so it names
// the field's bit in `seen`. `HOZO_FAST_FIELD(value, member)` reads the value: the caller defines it
// (null keeps the default for the state's records; it is refused for the config cache's).
#define HOZO_FAST_GET(field)                                                    \
  if (key == #field) {                                                          \
    if ((seen & (std::uint64_t{1} << bit)) != 0) return false;                  \
    seen |= std::uint64_t{1} << bit;                                            \
    return HOZO_FAST_FIELD(value, hozo_fast_t.field);                           \
  }                                                                             \
  ++bit;

/// The fast reader of `Type` from its field list (at most 64 fields); use inside namespace hozo.
#define HOZO_FAST_READ(Type, ...)                                                                   \
  namespace fast_json {                                                                             \
  template <>                                                                                       \
  bool fast_read(od::value v, Type& hozo_fast_t) {                                                  \
    hozo_fast_t = Type{};                                                                           \
    return fast_object(v, [&](std::string_view key, od::value value, std::uint64_t& seen) {        \
      unsigned bit = 0;                                                                             \
      NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(HOZO_FAST_GET, __VA_ARGS__))                        \
      return false;                                                                                 \
    });                                                                                             \
  }                                                                                                 \
  }
