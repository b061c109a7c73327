#include "hozo/util/shared_library.hpp"

#include <dlfcn.h>

#include <fmt/format.h>

namespace hozo {

Result<SharedLibrary> SharedLibrary::open(const char* soname, const char* package) {
  void* handle = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return make_error(ExitCode::unavailable, "cannot load {} ({}); install the Debian package {}", soname,
                      why != nullptr ? why : "unknown error", package);
  }
  return SharedLibrary(handle, soname);
}

void* SharedLibrary::lookup(const char* name) const noexcept { return ::dlsym(handle_, name); }

Error SharedLibrary::missing(const char* name) const {
  return make_error(ExitCode::unavailable, "{} has no {} (too old a version?)", soname_, name);
}

}  // namespace hozo
