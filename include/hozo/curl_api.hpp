#pragma once
// libcurl, loaded on first use (see util/shared_library.hpp): hozo does not link it, so commands
// that send nothing over HTTP (status, jobs list, a run without notifications) never load it.
// The wrappers have libcurl's names without the `curl_` prefix and take the same arguments.

#include <curl/curl.h>

#include "hozo/util/result.hpp"

namespace hozo::curl {

/// The functions hozo uses, resolved from libcurl.so.4.
struct Api {
  decltype(::curl_global_init)* global_init = nullptr;
  decltype(::curl_easy_init)* easy_init = nullptr;
  decltype(::curl_easy_cleanup)* easy_cleanup = nullptr;
  decltype(::curl_easy_setopt)* easy_setopt = nullptr;
  decltype(::curl_easy_perform)* easy_perform = nullptr;
  decltype(::curl_easy_getinfo)* easy_getinfo = nullptr;
  decltype(::curl_easy_strerror)* easy_strerror = nullptr;
  decltype(::curl_slist_append)* slist_append = nullptr;
  decltype(::curl_slist_free_all)* slist_free_all = nullptr;
};

/// Loads libcurl and runs curl_global_init, once per process (thread-safe). Error when the
/// library or one of its functions is missing.
Result<const Api*> load();

/// The loaded functions; only valid after load() succeeded.
const Api& api() noexcept;

/// curl_easy_init(); nullptr when libcurl could not be loaded (load() says why).
inline CURL* easy_init() {
  auto loaded = load();
  return loaded ? (*loaded)->easy_init() : nullptr;
}
inline void easy_cleanup(CURL* handle) { api().easy_cleanup(handle); }
/// curl_easy_setopt with the option's value passed as its own type (long, pointer, curl_off_t).
template <class T>
CURLcode easy_setopt(CURL* handle, CURLoption option, T value) {
  return api().easy_setopt(handle, option, value);
}
inline CURLcode easy_perform(CURL* handle) { return api().easy_perform(handle); }
template <class T>
CURLcode easy_getinfo(CURL* handle, CURLINFO info, T* out) {
  return api().easy_getinfo(handle, info, out);
}
inline const char* easy_strerror(CURLcode code) { return api().easy_strerror(code); }
inline curl_slist* slist_append(curl_slist* list, const char* line) { return api().slist_append(list, line); }
inline void slist_free_all(curl_slist* list) { api().slist_free_all(list); }

}  // namespace hozo::curl
