// wfp_lookup_fallback.node, a test-only addon: the socket probe over a build
// of native/socket_lookup.cc with WFP_REDIRECT_TEST_MISREAD_QUEUE, which reads
// libuv's handle queue one pointer off. The tests require that the lookup
// notices and still finds every socket through uv_walk.
#include <napi.h>

#include "js_errors.h"
#include "socket_probe.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  wfp::InitErrorClassSlot(env);
  wfp::testing::AddSocketProbe(env, exports);
  exports.Set("setErrorClass", Napi::Function::New(env, wfp::SetErrorClass));
  return exports;
}

}  // namespace

NODE_API_MODULE(wfp_lookup_fallback, Init)
