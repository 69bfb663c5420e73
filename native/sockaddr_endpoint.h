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

// Endpoint -> sockaddr for a socket of `family` (4 or 6): an IPv4 socket
// takes only IPv4 (mapped) endpoints, an IPv6 socket (IPv6 only) the others.
inline bool SockaddrFromEndpoint(const Endpoint& endpoint, int family,
                                 sockaddr_storage* storage, int* length) {
  std::memset(storage, 0, sizeof *storage);
  if (family == 4) {
    if (!IsMappedIpv4(endpoint)) return false;
    auto* in4 = reinterpret_cast<sockaddr_in*>(storage);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(endpoint.port);
    std::memcpy(&in4->sin_addr, endpoint.address + 12, 4);
    *length = sizeof(sockaddr_in);
    return true;
  }
  if (IsMappedIpv4(endpoint)) return false;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(storage);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(endpoint.port);
  std::memcpy(&in6->sin6_addr, endpoint.address, 16);
  in6->sin6_scope_id = endpoint.scope_id;
  *length = sizeof(sockaddr_in6);
  return true;
}

}  // namespace wfp

#endif  // WFP_REDIRECT_SOCKADDR_ENDPOINT_H_
