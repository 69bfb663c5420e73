// See relay_socket.h. Windows SOCKETs, called without overlapped I/O: the
// relay's socket is a duplicate of one libuv has tied to Node's completion
// port, so the relay never issues overlapped operations on it (their
// completions would arrive at that port, which only libuv reads); it reads and
// writes without blocking when uv_poll says the socket is ready.
#include "relay_socket.h"

#include <winsock2.h>
#include <ws2tcpip.h>

#include <climits>

namespace wfp {

// Windows 7 SP1 and later; older mingw-w64 headers lack the name.
#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

const RelaySocket kNoRelaySocket = INVALID_SOCKET;

namespace {
int Chunk(size_t length) { return length > INT_MAX ? INT_MAX : static_cast<int>(length); }
}  // namespace

long ReceiveSome(RelaySocket socket, uint8_t* into, size_t length, int* error) {
  const int got = recv(socket, reinterpret_cast<char*>(into), Chunk(length), 0);
  if (got == SOCKET_ERROR) *error = WSAGetLastError();
  return got;
}

long SendSome(RelaySocket socket, const uint8_t* from, size_t length, int* error) {
  const int sent = send(socket, reinterpret_cast<const char*>(from), Chunk(length), 0);
  if (sent == SOCKET_ERROR) *error = WSAGetLastError();
  return sent;
}

bool WouldBlock(int error) { return error == WSAEWOULDBLOCK; }
bool Interrupted(int error) { return error == WSAEINTR; }
bool NotConnected(int error) { return error == WSAENOTCONN; }

int ShutdownWrite(RelaySocket socket) { return shutdown(socket, SD_SEND) == 0 ? 0 : WSAGetLastError(); }

void CloseRelaySocket(RelaySocket socket) { closesocket(socket); }

bool PendingError(RelaySocket socket, int* error) {
  int length = sizeof(*error);
  *error = 0;
  return getsockopt(socket, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(error), &length) == 0;
}

bool PrepareStreamSocket(RelaySocket socket) {
  int type = 0;
  int length = sizeof(type);
  if (getsockopt(socket, SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &length) != 0 || type != SOCK_STREAM) {
    return false;
  }
  u_long on = 1;
  return ioctlsocket(socket, FIONBIO, &on) == 0;
}

void NoDelay(RelaySocket socket) {
  const BOOL on = TRUE;
  setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&on), sizeof(on));
}

int DuplicateSocket(RelaySocket socket, RelaySocket* out) {
  WSAPROTOCOL_INFOW info{};
  *out = INVALID_SOCKET;
  if (WSADuplicateSocketW(socket, GetCurrentProcessId(), &info) != 0) return WSAGetLastError();
  *out = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                    WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  return *out == INVALID_SOCKET ? WSAGetLastError() : 0;
}

const char* RelayErrorCode(int error) {
  // As libuv reports a read's WSAECONNABORTED (and Node's streams relay logs it).
  if (error == WSAECONNABORTED) return "ECONNRESET";
  return uv_err_name(uv_translate_sys_error(error));
}

}  // namespace wfp
