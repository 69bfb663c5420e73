// wfp_lookup_fallback.node, a test-only addon: the socket probe over a build
// of native/socket_lookup.cc with WFP_REDIRECT_TEST_MISREAD_QUEUE, which reads
// libuv's handle queue one pointer off. The tests require that the lookup
// notices and still finds every socket through uv_walk.
#include <napi.h>

#include "js_errors.h"
#include "socket_probe.h"

// The misreading lookup is compiled here, not listed as a source: node-gyp
// puts the object of a source outside this folder at one path for every
// target, so wfp_conformance and this addon would share one socket_lookup.o,
// built with whichever target's flags came last (after an incremental build,
// the production probe misread too).
#define WFP_REDIRECT_TEST_MISREAD_QUEUE
#include "../../native/socket_lookup.cc"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  wfp::InitErrorClassSlot(env);
  wfp::testing::AddSocketProbe(env, exports);
  exports.Set("setErrorClass", Napi::Function::New(env, wfp::SetErrorClass));
  return exports;
}

}  // namespace

NODE_API_MODULE(wfp_lookup_fallback, Init)
