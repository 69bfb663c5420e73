// The TPROXY side of UDP (Linux): a socket that an iptables TPROXY rule may
// deliver to and that reports each datagram's original destination, and
// replies sent from that destination. native/linux/udp_tproxy.cc implements
// it; native/no_netfilter/udp_tproxy.cc answers that the platform has none.
#ifndef WFP_REDIRECT_UDP_TPROXY_H_
#define WFP_REDIRECT_UDP_TPROXY_H_

#include <cstddef>
#include <cstdint>

#include "control_messages.h"
#include "os_socket.h"

namespace wfp {

// IP_TRANSPARENT and IP_RECVORIGDSTADDR (or their IPv6 forms). 0 or errno.
int EnableTproxy(int fd, int family);
// The original destination in one control message, if it is one.
bool ReadOriginalDestination(const ControlMessage& message, Endpoint* out);
// Sends from `from` (an address that need not be local) through a transparent
// socket bound there for the one datagram. 0 or errno; `*syscall` names the call.
int SendFromAddress(int family, const uint8_t* data, size_t size,
                    const Endpoint& to, const Endpoint& from, const char** syscall);

}  // namespace wfp

#endif  // WFP_REDIRECT_UDP_TPROXY_H_
