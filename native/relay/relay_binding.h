// binding.relayStart / relayDestroy (relay_binding.cc); nothing off Linux.
#ifndef WFP_REDIRECT_RELAY_BINDING_H_
#define WFP_REDIRECT_RELAY_BINDING_H_

#include <napi.h>

namespace wfp {
void InitRelay(Napi::Env env, Napi::Object exports);
}  // namespace wfp

#endif  // WFP_REDIRECT_RELAY_BINDING_H_
