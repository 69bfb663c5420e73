// UDP with control messages on Windows: WSARecvMsg (an extension function the
// provider hands out through WSAIoctl) and WSASendMsg on a non-blocking
// socket. A WFP callout's redirect records and context arrive as
// IP_WFP_REDIRECT_RECORDS / _CONTEXT control messages with a flow's first
// datagram; the records go on with the proxy's first datagram the same way.
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>

#include "../control_messages.h"
#include "../redirect_protocol.h"
#include "../sockaddr_endpoint.h"
#include "../udp_socket.h"

// ws2ipdef.h (Windows 8 SDK); older mingw-w64 headers lack them.
#ifndef IP_WFP_REDIRECT_RECORDS
#define IP_WFP_REDIRECT_RECORDS 60
#endif
#ifndef IP_WFP_REDIRECT_CONTEXT
#define IP_WFP_REDIRECT_CONTEXT 70
#endif
#ifndef IPV6_WFP_REDIRECT_RECORDS
#define IPV6_WFP_REDIRECT_RECORDS 60
#endif
#ifndef IPV6_WFP_REDIRECT_CONTEXT
#define IPV6_WFP_REDIRECT_CONTEXT 70
#endif
static_assert(IP_WFP_REDIRECT_RECORDS == IPV6_WFP_REDIRECT_RECORDS && IP_WFP_REDIRECT_CONTEXT == IPV6_WFP_REDIRECT_CONTEXT,
              "the receive path matches a control message's type at either level with one number");
#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#endif

namespace wfp {

static_assert(sizeof(WSACMSGHDR) == sizeof(ControlHeader) &&
                  offsetof(WSACMSGHDR, cmsg_len) == offsetof(ControlHeader, length) &&
                  offsetof(WSACMSGHDR, cmsg_level) == offsetof(ControlHeader, level) &&
                  offsetof(WSACMSGHDR, cmsg_type) == offsetof(ControlHeader, type),
              "WSACMSGHDR is not the layout control_messages.h parses");
static_assert(WSA_CMSG_LEN(0) == kControlHeaderSize && WSA_CMSG_SPACE(1) == ControlSpace(1),
              "WSA_CMSG_* align differently from control_messages.h");

namespace {

// Records and context of up to kMaxBlobSize bytes each, and room for more.
constexpr size_t kControlCapacity = 2 * ControlSpace(kMaxBlobSize) + 1024;

int RedirectLevel(int family) { return family == 6 ? IPPROTO_IPV6 : IPPROTO_IP; }

// Whether an IPv6 socket also carries IPv4 (IPV6_V6ONLY off).
bool IsDualStack(SOCKET s, int family) {
  if (family != 6) return false;
  DWORD v6only = 1;
  int size = sizeof v6only;
  if (getsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, reinterpret_cast<char*>(&v6only), &size) != 0) return false;
  return v6only == 0;
}

// Asks for the redirect records and context as control messages, as
// Microsoft's own code does (eBPF for Windows' UDP redirect tests): at
// IPPROTO_IP for an IPv4 socket, at IPPROTO_IPV6 for an IPv6 one, at both for
// a dual-stack one. A stack that does not know the options refuses them and
// the socket works the same, without the data, so the answers are not checked.
void AskForRedirectControlMessages(SOCKET s, int family) {
  const DWORD on = TRUE;
  const char* value = reinterpret_cast<const char*>(&on);
  if (family == 4 || IsDualStack(s, family)) {
    setsockopt(s, IPPROTO_IP, IP_WFP_REDIRECT_RECORDS, value, sizeof on);
    setsockopt(s, IPPROTO_IP, IP_WFP_REDIRECT_CONTEXT, value, sizeof on);
  }
  if (family == 6) {
    setsockopt(s, IPPROTO_IPV6, IPV6_WFP_REDIRECT_RECORDS, value, sizeof on);
    setsockopt(s, IPPROTO_IPV6, IPV6_WFP_REDIRECT_CONTEXT, value, sizeof on);
  }
}

// The levels a redirect control message is taken from: either IP level, as
// eBPF for Windows' tests accept it (a dual-stack socket may report an IPv4
// flow's at IPPROTO_IP); the same numbers at any other level mean something else.
bool IsRedirectLevel(int32_t level) { return level == IPPROTO_IP || level == IPPROTO_IPV6; }

}  // namespace

bool PlatformSendsRecordsWithDatagrams() { return true; }

int OpenUdpSocket(int family, bool transparent, UdpSocket* out, const char** syscall) {
  *syscall = "WSASocketW";
  if (transparent) return WSAEOPNOTSUPP;  // TPROXY is Linux's
  const SOCKET s = WSASocketW(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM, IPPROTO_UDP, nullptr, 0,
                              WSA_FLAG_OVERLAPPED | 0x80 /* WSA_FLAG_NO_HANDLE_INHERIT */);
  if (s == INVALID_SOCKET) return WSAGetLastError();
  int error = 0;
  u_long non_blocking = 1;
  DWORD off = FALSE, on = TRUE, returned = 0;
  *syscall = "ioctlsocket";
  if (ioctlsocket(s, FIONBIO, &non_blocking) != 0) error = WSAGetLastError();
  // Otherwise an ICMP "port unreachable" for an earlier datagram fails the next receive.
  *syscall = "WSAIoctl";
  if (error == 0 && WSAIoctl(s, SIO_UDP_CONNRESET, &off, sizeof off, nullptr, 0, &returned, nullptr, nullptr) != 0) {
    error = WSAGetLastError();
  }
  if (error == 0 && family == 6 &&
      setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, reinterpret_cast<const char*>(&on), sizeof on) != 0) {
    *syscall = "setsockopt";
    error = WSAGetLastError();
  }
  GUID guid = WSAID_WSARECVMSG;
  LPFN_WSARECVMSG receive = nullptr;
  if (error == 0 && WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, &receive, sizeof receive,
                             &returned, nullptr, nullptr) != 0) {
    *syscall = "WSAIoctl";
    error = WSAGetLastError();
  }
  if (error != 0) {
    closesocket(s);
    return error;
  }
  AskForRedirectControlMessages(s, family);
  out->socket = static_cast<OsSocket>(s);
  out->family = family;
  out->open = true;
  out->transparent = false;
  out->receive_msg = reinterpret_cast<void*>(receive);
  return 0;
}

int BindUdpSocket(UdpSocket& socket, const Endpoint& local) {
  sockaddr_storage storage;
  int length = 0;
  if (!SockaddrFromEndpoint(local, socket.family, &storage, &length)) return WSAEAFNOSUPPORT;
  if (bind(static_cast<SOCKET>(socket.socket), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    return WSAGetLastError();
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
  WSABUF data{static_cast<ULONG>(buffers.data.size()), reinterpret_cast<char*>(buffers.data.data())};
  WSAMSG message{};
  message.name = reinterpret_cast<sockaddr*>(&sender);
  message.namelen = sizeof sender;
  message.lpBuffers = &data;
  message.dwBufferCount = 1;
  message.Control = {static_cast<ULONG>(buffers.control.size()), reinterpret_cast<char*>(buffers.control.data())};
  DWORD received = 0;
  const auto receive = reinterpret_cast<LPFN_WSARECVMSG>(socket.receive_msg);
  if (receive(static_cast<SOCKET>(socket.socket), &message, &received, nullptr, nullptr) != 0) {
    const int error = WSAGetLastError();
    if (error == WSAEWOULDBLOCK) return kWouldBlock;
    if (error != WSAEMSGSIZE) return error;
    out->truncated = true;
    received = data.len;
  }
  out->size = received < data.len ? received : data.len;
  out->truncated = out->truncated || (message.dwFlags & MSG_TRUNC) != 0;
  if (!EndpointFromSockaddr(sender, static_cast<size_t>(message.namelen), &out->sender)) {
    out->sender = Endpoint{};
  }
  if ((message.dwFlags & MSG_CTRUNC) != 0) ++out->malformed_control;
  const size_t control_length =
      message.Control.len < buffers.control.size() ? message.Control.len : buffers.control.size();
  out->malformed_control += ForEachControlMessage(
      buffers.control.data(), control_length, [out](const ControlMessage& control) {
        if (!IsRedirectLevel(control.level)) return;
        if (control.type == IP_WFP_REDIRECT_RECORDS) {
          out->records = control.data;
          out->records_size = control.size;
        } else if (control.type == IP_WFP_REDIRECT_CONTEXT) {
          out->context = control.data;
          out->context_size = control.size;
        }
      });
  return 0;
}

int SendDatagram(UdpSocket& socket, const uint8_t* data, size_t size,
                 const Endpoint& to, const uint8_t* records, size_t records_size,
                 const Endpoint* from, const char** syscall) {
  *syscall = "WSASendMsg";
  if (from != nullptr) return WSAEOPNOTSUPP;  // sending from another address is TPROXY's (Linux)
  sockaddr_storage target;
  int length = 0;
  if (!SockaddrFromEndpoint(to, socket.family, &target, &length)) return WSAEAFNOSUPPORT;
  std::vector<uint8_t> control;
  if (records_size > 0) {
    control.resize(ControlSpace(records_size));
    size_t used = 0;
    AppendControlMessage(control.data(), control.size(), &used, RedirectLevel(socket.family),
                         IP_WFP_REDIRECT_RECORDS, records, records_size);
  }
  WSABUF buffer{static_cast<ULONG>(size), reinterpret_cast<char*>(const_cast<uint8_t*>(data))};
  WSAMSG message{};
  message.name = reinterpret_cast<sockaddr*>(&target);
  message.namelen = length;
  message.lpBuffers = &buffer;
  message.dwBufferCount = 1;
  message.Control = {static_cast<ULONG>(control.size()), control.empty() ? nullptr : reinterpret_cast<char*>(control.data())};
  DWORD sent = 0;
  if (WSASendMsg(static_cast<SOCKET>(socket.socket), &message, 0, &sent, nullptr, nullptr) != 0) {
    return WSAGetLastError();
  }
  return 0;
}

bool SendWouldBlock(int error) { return error == WSAEWOULDBLOCK || error == WSAENOBUFS; }

int TakePendingError(UdpSocket& socket) {
  int pending = 0;
  int size = sizeof pending;
  if (getsockopt(static_cast<SOCKET>(socket.socket), SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&pending), &size) != 0) {
    return WSAGetLastError();
  }
  return pending;
}

void CloseUdpSocket(UdpSocket& socket) {
  if (!socket.open) return;
  closesocket(static_cast<SOCKET>(socket.socket));
  socket.open = false;
}

}  // namespace wfp
