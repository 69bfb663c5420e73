// The addon's functions for the process behind a connection (lib/process/).
#ifndef WFP_REDIRECT_PROCESS_BINDING_H_
#define WFP_REDIRECT_PROCESS_BINDING_H_

#include <napi.h>

namespace wfp {

void InitProcessLookup(Napi::Env env, Napi::Object exports);

}  // namespace wfp

#endif  // WFP_REDIRECT_PROCESS_BINDING_H_
