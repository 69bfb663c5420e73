#include <winsock2.h>
#include <ws2tcpip.h>

#include "../os_socket.h"
#include "../sockaddr_endpoint.h"

namespace wfp {

const uint64_t kMaxOsSocket = (uint64_t{1} << 53) - 1;

bool ReadSocketEndpoint(OsSocket socket, EndpointSide side, Endpoint* out) {
  sockaddr_storage storage{};
  int length = sizeof storage;
  sockaddr* address = reinterpret_cast<sockaddr*>(&storage);
  const SOCKET s = static_cast<SOCKET>(socket);
  const int rc = side == EndpointSide::kPeer ? getpeername(s, address, &length)
                                             : getsockname(s, address, &length);
  return rc == 0 && EndpointFromSockaddr(storage, static_cast<size_t>(length), out);
}

// Windows 7 SP1 and later; older mingw-w64 headers lack the name.
#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

const char* const kCreateSocketCall = "WSASocketW";

int CreateTcpSocket(int family, OsSocket* out) {
  const SOCKET s =
      WSASocketW(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM, IPPROTO_TCP,
                 nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET) return WSAGetLastError();
  *out = static_cast<OsSocket>(s);
  return 0;
}

void CloseOsSocket(OsSocket socket) { closesocket(static_cast<SOCKET>(socket)); }

}  // namespace wfp
