// Test only: the native relay (native/relay/) alone, as binding.relay*
// (with what relayConnect asks of the rest: netfilter's record, a socket's
// endpoints), built by test/native/binding.gyp twice: wfp_relay_asan, with
// AddressSanitizer, for test/relay-asan.test.ts (loaded into node with libasan
// preloaded), and wfp_relay_small, with 1 KiB buffers
// (WFP_REDIRECT_RELAY_BUFFER_BYTES), for test/native-relay.test.ts, which
// needs a known number of reads queued before the relay starts; the 1 KiB
// build also for Windows (scripts/build-win32.js), where it has relayStart only. Both go
// through a pipe (splice) after a few KiB rather than 256 KiB
// (WFP_REDIRECT_RELAY_SPLICE_AFTER), so that their transfers take that path.
//
// The production sources are compiled here, in this file, not listed as
// sources of their own: node-gyp's make build puts an object of a source
// outside test/native at one path for every target (build/Release/native/...),
// so two targets compiling one source with different flags would link
// whichever object was built last (an AddressSanitizer object in the 1 KiB
// build, or a 64 KiB one under AddressSanitizer).
#include <napi.h>

#include "js_errors.cc"
#if defined(_WIN32)
#include "no_netfilter/original_destination.cc"
#include "relay/relay_socket_win.cc"
#include "win/os_socket.cc"
#else
#include "linux/original_destination.cc"
#include "posix/os_socket.cc"
#include "relay/relay_epoll_set.cc"
#include "relay/relay_socket_posix.cc"
#endif
#include "relay/relay_binding.cc"
#include "relay/relay_engine.cc"
#include "wsa_errors.cc"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  wfp::InitErrorClassSlot(env);
  wfp::InitRelay(env, exports);
  return exports;
}

}  // namespace

// The name is only the module's label: Node loads any file through napi_register_module_v1.
NODE_API_MODULE(wfp_relay, Init)
