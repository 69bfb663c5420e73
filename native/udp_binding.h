// The UdpSocket class the binding exports (native/udp_binding.cc).
#ifndef WFP_REDIRECT_UDP_BINDING_H_
#define WFP_REDIRECT_UDP_BINDING_H_

#include <napi.h>

namespace wfp {

void InitUdpSocket(Napi::Env env, Napi::Object exports);

}  // namespace wfp

#endif  // WFP_REDIRECT_UDP_BINDING_H_
