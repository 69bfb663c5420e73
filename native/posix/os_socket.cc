#include "../os_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../sockaddr_endpoint.h"

namespace wfp {

const uint64_t kMaxOsSocket = INT_MAX;

bool ReadSocketEndpoint(OsSocket socket, EndpointSide side, Endpoint* out) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  sockaddr* address = reinterpret_cast<sockaddr*>(&storage);
  const int fd = static_cast<int>(socket);
  const int rc = side == EndpointSide::kPeer ? getpeername(fd, address, &length)
                                             : getsockname(fd, address, &length);
  return rc == 0 && EndpointFromSockaddr(storage, length, out);
}

const char* const kCreateSocketCall = "socket";

int CreateTcpSocket(int family, OsSocket* out) {
  const int domain = family == 6 ? AF_INET6 : AF_INET;
#ifdef SOCK_CLOEXEC
  const int fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
#else  // macOS
  const int fd = socket(domain, SOCK_STREAM, 0);
  if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  if (fd < 0) return errno;
  *out = static_cast<OsSocket>(fd);
  return 0;
}

void CloseOsSocket(OsSocket socket) { close(static_cast<int>(socket)); }

}  // namespace wfp
