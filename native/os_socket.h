// Reading a socket's own addresses from the OS, one implementation per
// platform (native/win/os_socket.cc, native/posix/os_socket.cc): only the
// types of getsockname/getpeername differ between them.
#ifndef WFP_REDIRECT_OS_SOCKET_H_
#define WFP_REDIRECT_OS_SOCKET_H_

#include <cstdint>
#include <cstring>

#include "redirect_ioctl.h"

namespace wfp {

// An IP endpoint in one form for both families: IPv4 addresses are stored as
// IPv4-mapped IPv6 (::ffff:a.b.c.d), so a dual-stack socket's peer compares
// equal however it is spelled. The scope (interface index) is kept because
// two link-local connections can differ in nothing else; flow information is
// not kept.
struct Endpoint {
  uint8_t address[16];
  uint16_t port;
  uint32_t scope_id;  // 0: none, or not known
};

// Same address and port, and for link-local addresses (fe80::/10) the same
// scope when both sides know it. Node names a link-local address's interface
// ("fe80::1%eth0"), so the lookup knows it whenever Node does.
bool operator==(const Endpoint& a, const Endpoint& b);

inline constexpr uint8_t kIpv4MappedPrefix[12] = {0, 0, 0, 0, 0, 0,
                                                  0, 0, 0, 0, 0xff, 0xff};

// Stores a 4-byte IPv4 address (network order) as ::ffff:a.b.c.d.
inline void StoreMappedIpv4(const void* ipv4, Endpoint* out) {
  std::memcpy(out->address, kIpv4MappedPrefix, sizeof kIpv4MappedPrefix);
  std::memcpy(out->address + sizeof kIpv4MappedPrefix, ipv4, 4);
}

inline bool IsMappedIpv4(const Endpoint& endpoint) {
  return std::memcmp(endpoint.address, kIpv4MappedPrefix,
                     sizeof kIpv4MappedPrefix) == 0;
}

// The largest number an OS socket can have on this platform: a descriptor is
// an int on POSIX; a Windows SOCKET is pointer-sized, so there the limit is
// what a JS number holds exactly (2^53 - 1). Checked once, at the boundary.
extern const uint64_t kMaxOsSocket;

enum class EndpointSide { kLocal, kPeer };

// getsockname (kLocal) or getpeername (kPeer) of an OS socket; false when the
// call fails or the address is not IPv4 or IPv6.
bool ReadSocketEndpoint(OsSocket socket, EndpointSide side, Endpoint* out);

// Creates an unconnected TCP socket of the family (4 or 6) for libuv to adopt
// (overlapped on Windows, as libuv's completion port needs; not inherited by
// child processes anywhere). Returns 0, or the OS error code (errno or WSA).
int CreateTcpSocket(int family, OsSocket* out);

// The call CreateTcpSocket makes, for error reports.
extern const char* const kCreateSocketCall;

// Closes a socket CreateTcpSocket made that libuv never adopted.
void CloseOsSocket(OsSocket socket);

}  // namespace wfp

#endif  // WFP_REDIRECT_OS_SOCKET_H_
