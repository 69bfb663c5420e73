// The process behind a socket of this host, Linux's way: sock_diag names the
// socket of an exact 4-tuple (its inode and owner uid), and /proc tells which
// process holds a descriptor on that inode (native/linux/). Elsewhere
// (native/no_netfilter/) there is neither.
#ifndef WFP_REDIRECT_SOCKET_OWNER_H_
#define WFP_REDIRECT_SOCKET_OWNER_H_

#include <cstdint>
#include <vector>

#include "os_socket.h"

namespace wfp {

bool PlatformHasSocketDiag();

enum class DiagResult { kFound, kNotFound, kError };

struct SocketIdentity {
  uint32_t inode;  // 0 never returned as found (a TIME_WAIT socket has none)
  uint32_t uid;
};

// The socket whose local endpoint is `local` and whose peer is `remote`
// (TCP: exactly that connection, never a listener; UDP: the socket a datagram
// from `remote` to `local` would reach, connected or not). kError with errno.
DiagResult FindSocketIdentity(bool udp, const Endpoint& local, const Endpoint& remote,
                              SocketIdentity* out, int* error);

struct OwnerScan {
  int pid = 0;        // 0: not found
  int fd = -1;
  uint32_t examined = 0;  // descriptors read
  bool exhausted = false; // the budget ran out before every process was read
};

// Whether descriptor `fd` of process `pid` is the socket `inode` now.
bool HoldsSocket(int pid, int fd, uint32_t inode);

// The first process found holding a descriptor on socket `inode`: the
// `preferred` pids first, then those running as `uid`, then the rest; at most
// `budget` descriptors are read. Runs off the JS thread.
OwnerScan FindSocketHolder(uint32_t inode, uint32_t uid, const std::vector<int>& preferred,
                           uint32_t budget);

}  // namespace wfp

#endif  // WFP_REDIRECT_SOCKET_OWNER_H_
