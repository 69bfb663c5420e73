// Test only: the native relay (native/relay/) alone, built with
// AddressSanitizer by test/native/binding.gyp (wfp_relay_asan) for
// test/relay-asan.test.ts, which loads it into node with libasan preloaded.
#include <napi.h>

#include "js_errors.h"
#include "relay/relay_binding.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  wfp::InitErrorClassSlot(env);
  wfp::InitRelay(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(wfp_relay_asan, Init)
