// SO_MARK (Linux): a number on a socket that firewall rules can match, so
// that a proxy's own connections are exempted from the rules that redirect
// everything else to it. native/linux/socket_mark.cc sets it;
// native/no_netfilter/socket_mark.cc answers that the platform has none.
#ifndef WFP_REDIRECT_SOCKET_MARK_H_
#define WFP_REDIRECT_SOCKET_MARK_H_

#include <cerrno>
#include <cstdint>

#include "os_socket.h"

namespace wfp {

bool PlatformHasSocketMark();
// 0, or the OS's error (EPERM without CAP_NET_ADMIN).
int SetSocketMark(OsSocket socket, uint32_t mark);

// What to say of a failed SO_MARK or IP_TRANSPARENT: the capability only where
// the kernel refused for want of it (qemu-user, for one, answers ENOPROTOOPT).
inline const char* PrivilegeHint(int error, const char* for_eperm, const char* otherwise) {
  return error == EPERM ? for_eperm : otherwise;
}

}  // namespace wfp

#endif  // WFP_REDIRECT_SOCKET_MARK_H_
