#include "hozo/ssh_api.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <spdlog/spdlog.h>

#include "hozo/util/shared_library.hpp"

// X(return type, name, (parameters), (arguments)) for every libssh function hozo calls. The
// definitions below must match libssh.h exactly (the compiler checks it: they are extern "C").
#define HOZO_LIBSSH_FUNCTIONS(X)                                                                              \
  X(int, ssh_init, (void), ())                                                                                \
  X(ssh_session, ssh_new, (void), ())                                                                         \
  X(void, ssh_free, (ssh_session session), (session))                                                         \
  X(int, ssh_options_set, (ssh_session session, enum ssh_options_e type, const void* value),                  \
    (session, type, value))                                                                                   \
  X(int, ssh_connect, (ssh_session session), (session))                                                       \
  X(void, ssh_disconnect, (ssh_session session), (session))                                                   \
  X(const char*, ssh_get_error, (void* error), (error))                                                       \
  X(socket_t, ssh_get_fd, (ssh_session session), (session))                                                   \
  X(int, ssh_get_status, (ssh_session session), (session))                                                    \
  X(int, ssh_is_connected, (ssh_session session), (session))                                                  \
  X(void, ssh_set_blocking, (ssh_session session, int blocking), (session, blocking))                         \
  X(enum ssh_known_hosts_e, ssh_session_is_known_server, (ssh_session session), (session))                    \
  X(enum ssh_known_hosts_e, ssh_session_has_known_hosts_entry, (ssh_session session), (session))              \
  X(int, ssh_session_update_known_hosts, (ssh_session session), (session))                                    \
  X(int, ssh_get_server_publickey, (ssh_session session, ssh_key* key), (session, key))                       \
  X(int, ssh_get_publickey_hash,                                                                              \
    (const ssh_key key, enum ssh_publickey_hash_type type, unsigned char** hash, size_t* hlen),               \
    (key, type, hash, hlen))                                                                                  \
  X(char*, ssh_get_fingerprint_hash, (enum ssh_publickey_hash_type type, unsigned char* hash, size_t len),    \
    (type, hash, len))                                                                                        \
  X(void, ssh_clean_pubkey_hash, (unsigned char** hash), (hash))                                              \
  X(void, ssh_string_free_char, (char* s), (s))                                                               \
  X(void, ssh_key_free, (ssh_key key), (key))                                                                 \
  X(enum ssh_keytypes_e, ssh_key_type, (const ssh_key key), (key))                                            \
  X(enum ssh_keytypes_e, ssh_key_type_from_name, (const char* name), (name))                                  \
  X(const char*, ssh_key_type_to_char, (enum ssh_keytypes_e type), (type))                                    \
  X(int, ssh_pki_generate, (enum ssh_keytypes_e type, int parameter, ssh_key* pkey), (type, parameter, pkey)) \
  X(int, ssh_pki_import_privkey_file,                                                                         \
    (const char* filename, const char* passphrase, ssh_auth_callback auth_fn, void* auth_data, ssh_key* pkey), \
    (filename, passphrase, auth_fn, auth_data, pkey))                                                         \
  X(int, ssh_pki_import_pubkey_base64, (const char* b64_key, enum ssh_keytypes_e type, ssh_key* pkey),       \
    (b64_key, type, pkey))                                                                                    \
  X(int, ssh_pki_export_privkey_base64,                                                                       \
    (const ssh_key privkey, const char* passphrase, ssh_auth_callback auth_fn, void* auth_data,              \
     char** b64_key),                                                                                         \
    (privkey, passphrase, auth_fn, auth_data, b64_key))                                                       \
  X(int, ssh_pki_export_privkey_to_pubkey, (const ssh_key privkey, ssh_key* pkey), (privkey, pkey))          \
  X(int, ssh_pki_export_pubkey_base64, (const ssh_key key, char** b64_key), (key, b64_key))                   \
  X(int, ssh_userauth_publickey, (ssh_session session, const char* username, const ssh_key privkey),         \
    (session, username, privkey))                                                                             \
  X(ssh_channel, ssh_channel_new, (ssh_session session), (session))                                           \
  X(void, ssh_channel_free, (ssh_channel channel), (channel))                                                 \
  X(int, ssh_channel_close, (ssh_channel channel), (channel))                                                 \
  X(int, ssh_channel_open_session, (ssh_channel channel), (channel))                                          \
  X(int, ssh_channel_request_exec, (ssh_channel channel, const char* cmd), (channel, cmd))                    \
  X(int, ssh_channel_request_send_signal, (ssh_channel channel, const char* signum), (channel, signum))       \
  X(int, ssh_channel_poll, (ssh_channel channel, int is_stderr), (channel, is_stderr))                        \
  X(ssh_session, ssh_channel_get_session, (ssh_channel channel), (channel))                                   \
  X(int, ssh_set_channel_callbacks, (ssh_channel channel, ssh_channel_callbacks cb), (channel, cb))           \
  X(ssh_event, ssh_event_new, (void), ())                                                                     \
  X(void, ssh_event_free, (ssh_event event), (event))                                                         \
  X(int, ssh_event_add_session, (ssh_event event, ssh_session session), (event, session))                     \
  X(int, ssh_event_remove_session, (ssh_event event, ssh_session session), (event, session))                  \
  X(int, ssh_event_dopoll, (ssh_event event, int timeout), (event, timeout))

namespace hozo::libssh {

namespace {

/// The loaded functions, one pointer per libssh function (same names).
struct Api {
#define HOZO_LIBSSH_SLOT(ret, name, params, args) decltype(&::name) name = nullptr;
  HOZO_LIBSSH_FUNCTIONS(HOZO_LIBSSH_SLOT)
#undef HOZO_LIBSSH_SLOT
};

Api g_api;

Result<void> resolve(const SharedLibrary& lib) {
#define HOZO_LIBSSH_BIND(ret, name, params, args) \
  if (auto bound = lib.bind(g_api.name, #name); !bound) return bound;
  HOZO_LIBSSH_FUNCTIONS(HOZO_LIBSSH_BIND)
#undef HOZO_LIBSSH_BIND
  if (g_api.ssh_init() != SSH_OK) return make_error(ExitCode::unavailable, "ssh_init failed (libssh.so.4)");
  return ok();
}

std::once_flag g_once;
Result<void> g_loaded = ok();

void load_once() {
  const auto start = std::chrono::steady_clock::now();
  auto lib = SharedLibrary::open("libssh.so.4", "libssh-4");
  g_loaded = lib ? resolve(*lib) : Result<void>(std::move(lib).error());
  spdlog::debug("libssh loaded in {:.1f} ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
}

/// The functions for a call from code that did not check load(): loads now, or ends the process
/// with the reason (exit 69) -- there is no way to return an error through libssh's own signature.
const Api& api() noexcept {
  if (auto loaded = load(); !loaded) {
    std::fprintf(stderr, "hozo: %s\n", loaded.error().message.c_str());
    std::_Exit(static_cast<int>(ExitCode::unavailable));
  }
  return g_api;
}

}  // namespace

Result<void> load() {
  std::call_once(g_once, load_once);
  return g_loaded;
}

void preload() {
  static std::once_flag started;
  std::call_once(started, [] {
    // Detached on purpose: load() is call_once, so a later load() waits for this thread's work.
    std::thread([] {
      if (!load()) return;
      // OpenSSL sets itself up on first use (its config file, the default provider, the random
      // generator): a throwaway key does that here instead of in the first key exchange.
      ssh_key key = nullptr;
      if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) == SSH_OK) ssh_key_free(key);
    }).detach();
  });
}

}  // namespace hozo::libssh

// The libssh functions, forwarding to the loaded library.
extern "C" {
#define HOZO_LIBSSH_STUB(ret, name, params, args) \
  ret name params { return hozo::libssh::api().name args; }
HOZO_LIBSSH_FUNCTIONS(HOZO_LIBSSH_STUB)
#undef HOZO_LIBSSH_STUB
}
