#pragma once
// Shared libraries loaded when first needed (dlopen) instead of at every start. libcurl (with its
// ~25 dependencies: GnuTLS, Kerberos, LDAP, ...) and libmicrohttpd cost a `hozo status` 3 ms and
// every hozo process 4 MiB of resident memory, for the few commands that use them (notifications,
// backupd's API, the dashboard). systemd loads its optional libraries the same way.

#include <string>

#include "hozo/util/result.hpp"

namespace hozo {

/// A library opened with dlopen; it stays loaded for the rest of the process.
class SharedLibrary {
 public:
  /// dlopen(soname); an Error naming the library, dlerror()'s words and the Debian package.
  static Result<SharedLibrary> open(const char* soname, const char* package);

  /// Sets `slot` to the function `name` (F is its type, e.g. decltype(curl_easy_init)); Error when
  /// the library has no such symbol.
  template <class F>
  Result<void> bind(F*& slot, const char* name) const {
    void* address = lookup(name);
    if (address == nullptr) return missing(name);
    slot = reinterpret_cast<F*>(address);  // NOLINT: dlsym's documented use
    return ok();
  }

 private:
  SharedLibrary(void* handle, std::string soname) noexcept : handle_(handle), soname_(std::move(soname)) {}
  [[nodiscard]] void* lookup(const char* name) const noexcept;
  [[nodiscard]] Error missing(const char* name) const;
  void* handle_ = nullptr;
  std::string soname_;
};

}  // namespace hozo
