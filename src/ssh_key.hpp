#pragma once
// libssh key helpers shared by the ssh and init modules (private to src/: needs libssh's header).

#include <memory>
#include <string>
#include <type_traits>

#include <libssh/libssh.h>

namespace hozo {

/// Frees an ssh_key.
struct KeyDeleter {
  void operator()(ssh_key key) const noexcept { ssh_key_free(key); }
};
/// An owned ssh_key.
using KeyPtr = std::unique_ptr<std::remove_pointer_t<ssh_key>, KeyDeleter>;

/// "SHA256:<unpadded base64>" like `ssh-keygen -l`; empty on failure.
std::string fingerprint_of(ssh_key key);

}  // namespace hozo
