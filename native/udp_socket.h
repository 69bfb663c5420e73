// A non-blocking UDP socket that reads each datagram with its control
// messages and can send control messages: what Node's dgram cannot. One
// implementation per platform (native/win/udp_socket.cc with WSARecvMsg and
// WSASendMsg, native/posix/udp_socket.cc with recvmsg and sendmsg); the Linux
// TPROXY parts are in native/linux/udp_tproxy.cc. The event loop side (uv_poll)
// and the JS class are in native/udp_binding.cc.
#ifndef WFP_REDIRECT_UDP_SOCKET_H_
#define WFP_REDIRECT_UDP_SOCKET_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "os_socket.h"

namespace wfp {

// Room for the largest UDP payload (65,507 bytes over IPv4, 65,527 over IPv6)
// and one byte more, so that a larger datagram shows as truncated.
constexpr size_t kDatagramBufferSize = 65536;

struct UdpSocket {
  OsSocket socket = 0;
  int family = 4;  // 4 or 6
  bool open = false;
  bool transparent = false;    // Linux: IP_TRANSPARENT, original destinations
  void* receive_msg = nullptr;  // Windows: the provider's WSARecvMsg
};

// Where datagrams are read to: one pair per thread serves all its sockets (a
// datagram is copied out before the next is read), so that a flow's socket
// costs no 64 KiB of its own.
struct ReceiveBuffers {
  std::vector<uint8_t> data;     // kDatagramBufferSize
  std::vector<uint8_t> control;  // as much as the platform's redirect data needs
};

// Sizes the buffers for this platform (once).
void PrepareReceiveBuffers(ReceiveBuffers* buffers);

// What came with one datagram. The pointers are into the receive buffers and
// valid until the next receive.
struct ReceivedDatagram {
  size_t size = 0;
  Endpoint sender{};
  bool truncated = false;  // larger than the buffer: its data is incomplete
  const uint8_t* records = nullptr;  // Windows: IP_WFP_REDIRECT_RECORDS
  size_t records_size = 0;
  const uint8_t* context = nullptr;  // Windows: IP_WFP_REDIRECT_CONTEXT
  size_t context_size = 0;
  bool has_original_destination = false;  // Linux: IP(V6)_ORIGDSTADDR
  Endpoint original_destination{};
  // Control data that was cut short (the OS's truncation flag) or malformed
  // (ForEachControlMessage): skipped, never read past.
  size_t malformed_control = 0;
};

// Errors are the OS's numbers (errno, or WSA* on Windows); 0 is success.
constexpr int kWouldBlock = -1;  // Receive: nothing waiting

// Opens a non-blocking UDP socket of the family (IPv6 sockets are IPv6 only),
// not inherited by child processes. With `transparent` (Linux only) it may be
// the target of an iptables TPROXY rule and reports each datagram's original
// destination; that needs CAP_NET_ADMIN. `*syscall` names a failing call.
int OpenUdpSocket(int family, bool transparent, UdpSocket* out, const char** syscall);
int BindUdpSocket(UdpSocket& socket, const Endpoint& local);
bool UdpLocalEndpoint(const UdpSocket& socket, Endpoint* out);
// One datagram: 0, kWouldBlock, or an OS error.
int ReceiveDatagram(UdpSocket& socket, ReceiveBuffers& buffers, ReceivedDatagram* out);
// Sends one datagram; `records` (size > 0) go as an IP_WFP_REDIRECT_RECORDS
// control message (Windows); `from` (Linux, transparent) sends it from that
// address and port. Returns 0 or an OS error; `*syscall` names a failing call.
int SendDatagram(UdpSocket& socket, const uint8_t* data, size_t size,
                 const Endpoint& to, const uint8_t* records, size_t records_size,
                 const Endpoint* from, const char** syscall);
// Whether a send failed only because the socket's buffer is full for now
// (EAGAIN, EWOULDBLOCK, ENOBUFS; WSAEWOULDBLOCK, WSAENOBUFS): the datagram
// can wait and go when the socket polls writable, as libuv's do.
bool SendWouldBlock(int error);
// Reads and clears the socket's pending error (SO_ERROR) and, on Linux, the
// errors queued for it (MSG_ERRQUEUE, under IP_RECVERR), which otherwise keep
// its poll failing. Returns the pending error, 0 when there was none.
int TakePendingError(UdpSocket& socket);
void CloseUdpSocket(UdpSocket& socket);
// Where the platform can send redirect records with a datagram (Windows) and
// reply from an original destination (Linux).
bool PlatformSendsRecordsWithDatagrams();
bool PlatformHasTproxy();

}  // namespace wfp

#endif  // WFP_REDIRECT_UDP_SOCKET_H_
