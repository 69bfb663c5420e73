// UDP with control messages on POSIX: recvmsg / sendmsg on a non-blocking
// descriptor; the control messages are walked with the system's CMSG_*
// macros (received_control.h), whatever this platform's cmsghdr looks like. The original destination of a TPROXY'd datagram comes from
// native/linux/udp_tproxy.cc (nothing elsewhere).
#include "../udp_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../control_messages.h"
#include "../sockaddr_endpoint.h"
#include "../udp_tproxy.h"
#include "received_control.h"

namespace wfp {

namespace {

// An original destination is 28 bytes (sockaddr_in6); room for a few more
// messages the kernel may add.
constexpr size_t kControlCapacity = 512;
// Queued errors read per poll failure (TakePendingError).
constexpr int kErrorQueueReadsPerFailure = 256;

int SetFlags(int fd) {
  const int status = fcntl(fd, F_GETFL);
  if (status < 0 || fcntl(fd, F_SETFL, status | O_NONBLOCK) < 0) return errno;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return errno;
  return 0;
}

}  // namespace

int OpenUdpSocket(int family, bool transparent, UdpSocket* out, const char** syscall) {
  *syscall = "socket";
  const int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  int error = SetFlags(fd);
  *syscall = "fcntl";
  if (error == 0 && family == 6) {
    const int on = 1;
    *syscall = "setsockopt";
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) error = errno;
  }
  if (error == 0 && transparent) {
    *syscall = "setsockopt";
    error = EnableTproxy(fd, family);
  }
  if (error != 0) {
    close(fd);
    return error;
  }
  out->socket = static_cast<OsSocket>(fd);
  out->family = family;
  out->open = true;
  out->transparent = transparent;
  return 0;
}

int BindUdpSocket(UdpSocket& socket, const Endpoint& local) {
  sockaddr_storage storage;
  int length = 0;
  if (!SockaddrFromEndpoint(local, socket.family, &storage, &length)) return EAFNOSUPPORT;
  if (bind(static_cast<int>(socket.socket), reinterpret_cast<sockaddr*>(&storage),
           static_cast<socklen_t>(length)) != 0) {
    return errno;
  }
  return 0;
}

bool UdpLocalEndpoint(const UdpSocket& socket, Endpoint* out) {
  return ReadSocketEndpoint(socket.socket, EndpointSide::kLocal, out);
}

void PrepareReceiveBuffers(ReceiveBuffers* buffers) {
  buffers->data.assign(kDatagramBufferSize, 0);
  buffers->control.assign(kControlCapacity, 0);
}

int ReceiveDatagram(UdpSocket& socket, ReceiveBuffers& buffers, ReceivedDatagram* out) {
  *out = ReceivedDatagram{};
  sockaddr_storage sender{};
  iovec vector{buffers.data.data(), buffers.data.size()};
  msghdr message{};
  message.msg_name = &sender;
  message.msg_namelen = sizeof sender;
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  message.msg_control = buffers.control.data();
  message.msg_controllen = buffers.control.size();
  ssize_t received;
  do {
    received = recvmsg(static_cast<int>(socket.socket), &message, 0);
  } while (received < 0 && errno == EINTR);
  if (received < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? kWouldBlock : errno;
  out->size = static_cast<size_t>(received);
  out->truncated = (message.msg_flags & MSG_TRUNC) != 0;
  if (!EndpointFromSockaddr(sender, message.msg_namelen, &out->sender)) {
    out->sender = Endpoint{};
  }
  if ((message.msg_flags & MSG_CTRUNC) != 0) ++out->malformed_control;
  // Never past the buffer, whatever the call reported.
  if (message.msg_controllen > buffers.control.size()) message.msg_controllen = buffers.control.size();
  out->malformed_control += ForEachReceivedControlMessage(message, [out](const ControlMessage& control) {
    if (ReadOriginalDestination(control, &out->original_destination)) out->has_original_destination = true;
  });
  return 0;
}

int SendDatagram(UdpSocket& socket, const uint8_t* data, size_t size,
                 const Endpoint& to, const uint8_t* records, size_t records_size,
                 const Endpoint* from, const char** syscall) {
  (void)records;
  *syscall = "sendmsg";
  if (records_size > 0) return EOPNOTSUPP;  // WFP redirect records exist only on Windows
  if (from != nullptr) return SendFromAddress(socket.family, data, size, to, *from, syscall);
  sockaddr_storage storage;
  int length = 0;
  if (!SockaddrFromEndpoint(to, socket.family, &storage, &length)) return EAFNOSUPPORT;
  iovec vector{const_cast<uint8_t*>(data), size};
  msghdr message{};
  message.msg_name = &storage;
  message.msg_namelen = static_cast<socklen_t>(length);
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  ssize_t sent;
  do {
    sent = sendmsg(static_cast<int>(socket.socket), &message, 0);
  } while (sent < 0 && errno == EINTR);
  return sent < 0 ? errno : 0;
}

bool SendWouldBlock(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS; }

int TakePendingError(UdpSocket& socket) {
  const int fd = static_cast<int>(socket.socket);
  int pending = 0;
  socklen_t size = sizeof pending;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &size) != 0) pending = errno;
#ifdef MSG_ERRQUEUE
  // Each read takes one queued error; bounded, and what is left polls as an
  // error again (and counts as one more failure).
  for (int i = 0; i < kErrorQueueReadsPerFailure; ++i) {
    uint8_t data[1];
    uint8_t control[kControlCapacity];
    iovec vector{data, sizeof data};
    msghdr message{};
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    if (recvmsg(fd, &message, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
  }
#endif
  return pending;
}

void CloseUdpSocket(UdpSocket& socket) {
  if (!socket.open) return;
  close(static_cast<int>(socket.socket));
  socket.open = false;
}

bool PlatformSendsRecordsWithDatagrams() { return false; }

}  // namespace wfp
