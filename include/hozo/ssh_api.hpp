#pragma once
// libssh, loaded on first use (see util/shared_library.hpp) instead of at every start: hozo does
// not link it. libssh brings OpenSSL's libcrypto and Kerberos (nine libraries, ~6 MiB to map and
// relocate), which `hozo status`, `jobs list` and the dashboard never use; `jobs run` loads it on a
// thread of its own while the first probe waits for sshd (preload()).
//
// src/ssh_api.cpp defines every libssh function hozo calls under its own name (ssh_new,
// ssh_connect, ...), each forwarding to the loaded library, so the code that uses libssh reads as
// plain libssh. A call before load() succeeded loads the library then; if it cannot be loaded,
// that call ends the process with exit code 69 and the reason.

#include "hozo/util/result.hpp"

namespace hozo::libssh {

/// Loads libssh.so.4, resolves the functions hozo uses and runs ssh_init(), once per process
/// (thread-safe). Error (unavailable, naming the Debian package) when the library or a function
/// is missing. Call it where an SSH error can be reported as a value.
Result<void> load();

/// Starts load() on a thread of its own and returns at once (the first call only): the next
/// load() waits for it. The thread then warms OpenSSL up for the first key exchange.
void preload();

}  // namespace hozo::libssh
