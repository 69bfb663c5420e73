// sockaddr -> Endpoint, written once for both platforms' socket headers
// (included after them: <netinet/in.h> or <ws2tcpip.h>).
#ifndef WFP_REDIRECT_SOCKADDR_ENDPOINT_H_
#define WFP_REDIRECT_SOCKADDR_ENDPOINT_H_

#include <cstddef>
#include <cstring>

#include "os_socket.h"

namespace wfp {

inline bool EndpointFromSockaddr(const sockaddr_storage& storage,
                                 size_t length, Endpoint* out) {
  if (storage.ss_family == AF_INET && length >= sizeof(sockaddr_in)) {
    const auto& in4 = reinterpret_cast<const sockaddr_in&>(storage);
    StoreMappedIpv4(&in4.sin_addr, out);
    out->port = ntohs(in4.sin_port);
    out->scope_id = 0;
    return true;
  }
  if (storage.ss_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
    std::memcpy(out->address, &in6.sin6_addr, 16);
    out->port = ntohs(in6.sin6_port);
    out->scope_id = in6.sin6_scope_id;
    return true;
  }
  return false;
}

}  // namespace wfp

#endif  // WFP_REDIRECT_SOCKADDR_ENDPOINT_H_
