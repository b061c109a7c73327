#include "hozo/curl_api.hpp"

#include <mutex>

#include "hozo/util/shared_library.hpp"

namespace hozo::curl {

namespace {

Api g_api;

Result<void> resolve(const SharedLibrary& lib) {
  for (auto bound :
       {lib.bind(g_api.global_init, "curl_global_init"), lib.bind(g_api.easy_init, "curl_easy_init"),
        lib.bind(g_api.easy_cleanup, "curl_easy_cleanup"), lib.bind(g_api.easy_setopt, "curl_easy_setopt"),
        lib.bind(g_api.easy_perform, "curl_easy_perform"), lib.bind(g_api.easy_getinfo, "curl_easy_getinfo"),
        lib.bind(g_api.easy_strerror, "curl_easy_strerror"), lib.bind(g_api.slist_append, "curl_slist_append"),
        lib.bind(g_api.slist_free_all, "curl_slist_free_all")}) {
    if (!bound) return bound;
  }
  if (const CURLcode rc = g_api.global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
    return make_error(ExitCode::unavailable, "curl_global_init failed ({})", static_cast<int>(rc));
  }
  return ok();
}

}  // namespace

Result<const Api*> load() {
  static std::once_flag once;
  static Result<void> loaded = ok();
  std::call_once(once, [] {
    auto lib = SharedLibrary::open("libcurl.so.4", "libcurl4");
    loaded = lib ? resolve(*lib) : Result<void>(std::move(lib).error());
  });
  if (!loaded) return loaded.error();
  return &g_api;
}

const Api& api() noexcept { return g_api; }

}  // namespace hozo::curl
