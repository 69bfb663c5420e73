// binding.relay* (relay_binding.cc): all of it on Linux, relayStart and relayDestroy on Windows.
#ifndef WFP_REDIRECT_RELAY_BINDING_H_
#define WFP_REDIRECT_RELAY_BINDING_H_

#include <napi.h>

namespace wfp {
void InitRelay(Napi::Env env, Napi::Object exports);
}  // namespace wfp

#endif  // WFP_REDIRECT_RELAY_BINDING_H_
