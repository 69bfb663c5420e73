// The process behind a socket of this host, Windows's way: the owner-pid TCP
// and UDP tables (GetExtendedTcpTable / GetExtendedUdpTable) and the process
// image name (native/win/). Elsewhere (native/posix/) there are none.
#ifndef WFP_REDIRECT_OWNER_PID_TABLE_H_
#define WFP_REDIRECT_OWNER_PID_TABLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "os_socket.h"

namespace wfp {

bool PlatformHasOwnerPidTables();

struct OwnerRow {
  Endpoint local;
  Endpoint remote;  // UDP rows have none: all zero
  uint32_t pid;
};

// The rows of the family's (4 or 6) TCP connection table (or UDP listener
// table) whose local port is `local_port`. Returns 0, or the Win32 error.
int OwnerPidRows(bool udp, int family, uint16_t local_port, std::vector<OwnerRow>* out);

// The full path of process `pid`'s image, in UTF-8. Returns 0, or the Win32 error.
int ProcessImagePath(uint32_t pid, std::string* out);

}  // namespace wfp

#endif  // WFP_REDIRECT_OWNER_PID_TABLE_H_
