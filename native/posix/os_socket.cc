#include "../os_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../sockaddr_endpoint.h"

namespace wfp {

bool ReadSocketEndpoint(OsSocket socket, EndpointSide side, Endpoint* out) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  sockaddr* address = reinterpret_cast<sockaddr*>(&storage);
  const int fd = static_cast<int>(socket);
  const int rc = side == EndpointSide::kPeer ? getpeername(fd, address, &length)
                                             : getsockname(fd, address, &length);
  return rc == 0 && EndpointFromSockaddr(storage, length, out);
}

}  // namespace wfp
