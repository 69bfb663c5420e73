// See relay_socket.h. POSIX descriptors (built on Linux, where the relay runs).
#include "relay_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wfp {

const RelaySocket kNoRelaySocket = -1;

long ReceiveSome(RelaySocket socket, uint8_t* into, size_t length, int* error) {
  const ssize_t got = read(socket, into, length);
  if (got < 0) *error = errno;
  return static_cast<long>(got);
}

long SendSome(RelaySocket socket, const uint8_t* from, size_t length, int* error) {
  // MSG_NOSIGNAL: a peer gone is EPIPE here, not a SIGPIPE for the process.
  const ssize_t sent = send(socket, from, length, MSG_NOSIGNAL);
  if (sent < 0) *error = errno;
  return static_cast<long>(sent);
}

bool WouldBlock(int error) { return error == EAGAIN || error == EWOULDBLOCK; }
bool Interrupted(int error) { return error == EINTR; }
bool NotConnected(int error) { return error == ENOTCONN; }

int ShutdownWrite(RelaySocket socket) { return shutdown(socket, SHUT_WR) == 0 ? 0 : errno; }

void CloseRelaySocket(RelaySocket socket) { close(socket); }

bool PendingError(RelaySocket socket, int* error) {
  socklen_t length = sizeof(*error);
  *error = 0;
  return getsockopt(socket, SOL_SOCKET, SO_ERROR, error, &length) == 0;
}

bool PrepareStreamSocket(RelaySocket socket) {
  int type = 0;
  socklen_t length = sizeof(type);
  if (getsockopt(socket, SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_STREAM) return false;
  const int flags = fcntl(socket, F_GETFL);
  return flags >= 0 && ((flags & O_NONBLOCK) != 0 || fcntl(socket, F_SETFL, flags | O_NONBLOCK) == 0);
}

void NoDelay(RelaySocket socket) {
  const int on = 1;
  setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

int DuplicateSocket(RelaySocket socket, RelaySocket* out) {
  // F_DUPFD_CLOEXEC: not inherited by a child process, which would hold the connection open.
  *out = fcntl(socket, F_DUPFD_CLOEXEC, 0);
  return *out < 0 ? errno : 0;
}

const char* RelayErrorCode(int error) { return uv_err_name(-error); }

}  // namespace wfp
