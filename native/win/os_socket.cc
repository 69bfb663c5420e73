#include <winsock2.h>
#include <ws2tcpip.h>

#include "../os_socket.h"
#include "../sockaddr_endpoint.h"

namespace wfp {

bool ReadSocketEndpoint(OsSocket socket, EndpointSide side, Endpoint* out) {
  sockaddr_storage storage{};
  int length = sizeof storage;
  sockaddr* address = reinterpret_cast<sockaddr*>(&storage);
  const SOCKET s = static_cast<SOCKET>(socket);
  const int rc = side == EndpointSide::kPeer ? getpeername(s, address, &length)
                                             : getsockname(s, address, &length);
  return rc == 0 && EndpointFromSockaddr(storage, static_cast<size_t>(length), out);
}

}  // namespace wfp
