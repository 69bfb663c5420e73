// TPROXY for UDP on Linux: IP_TRANSPARENT lets an iptables TPROXY rule
// deliver datagrams for any address to the socket, IP_RECVORIGDSTADDR reports
// where each was going, and a reply leaves from that address through a
// transparent socket bound there (IPv6: the IPV6_ forms).
#include "../udp_tproxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../sockaddr_endpoint.h"

#ifndef IP_RECVORIGDSTADDR
#define IP_RECVORIGDSTADDR 20
#endif
#ifndef IPV6_RECVORIGDSTADDR
#define IPV6_RECVORIGDSTADDR 74
#endif

namespace wfp {

bool PlatformHasTproxy() { return true; }

int EnableTproxy(int fd, int family) {
  const int on = 1;
  const int level = family == 6 ? SOL_IPV6 : SOL_IP;
  if (setsockopt(fd, level, family == 6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &on, sizeof on) != 0 ||
      setsockopt(fd, level, family == 6 ? IPV6_RECVORIGDSTADDR : IP_RECVORIGDSTADDR, &on, sizeof on) != 0) {
    return errno;
  }
  return 0;
}

bool ReadOriginalDestination(const ControlMessage& message, Endpoint* out) {
  // IP_ORIGDSTADDR and IPV6_ORIGDSTADDR share the numbers of the options that ask for them.
  const bool v4 = message.level == SOL_IP && message.type == IP_ORIGDSTADDR;
  const bool v6 = message.level == SOL_IPV6 && message.type == IPV6_ORIGDSTADDR;
  if (!v4 && !v6) return false;
  sockaddr_storage storage{};
  const size_t wanted = v4 ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (message.size < wanted) return false;
  std::memcpy(&storage, message.data, wanted);
  if (storage.ss_family != (v4 ? AF_INET : AF_INET6)) return false;
  return EndpointFromSockaddr(storage, wanted, out);
}

int SendFromAddress(int family, const uint8_t* data, size_t size,
                    const Endpoint& to, const Endpoint& from, const char** syscall) {
  sockaddr_storage source, target;
  int source_length = 0, target_length = 0;
  if (!SockaddrFromEndpoint(from, family, &source, &source_length) ||
      !SockaddrFromEndpoint(to, family, &target, &target_length)) {
    return EAFNOSUPPORT;
  }
  *syscall = "socket";
  const int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno;
  const int on = 1;
  int error = 0;
  *syscall = "setsockopt";
  // SO_REUSEADDR: replies of several flows from one destination may overlap.
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) ||
      setsockopt(fd, family == 6 ? SOL_IPV6 : SOL_IP, family == 6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &on, sizeof on) != 0) {
    error = errno;
  } else if (*syscall = "bind", bind(fd, reinterpret_cast<sockaddr*>(&source), static_cast<socklen_t>(source_length)) != 0) {
    error = errno;
  } else if (*syscall = "sendto", sendto(fd, data, size, 0, reinterpret_cast<sockaddr*>(&target), static_cast<socklen_t>(target_length)) < 0) {
    error = errno;
  }
  close(fd);
  return error;
}

}  // namespace wfp
