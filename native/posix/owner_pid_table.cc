// POSIX: no owner-pid tables (native/owner_pid_table.h); Linux answers
// through sock_diag and /proc instead (native/linux/socket_owner.cc).
#include "../owner_pid_table.h"

#include <errno.h>

namespace wfp {

bool PlatformHasOwnerPidTables() { return false; }

int OwnerPidRows(bool, int, uint16_t, std::vector<OwnerRow>*) { return ENOSYS; }

int ProcessImagePath(uint32_t, std::string*) { return ENOSYS; }

}  // namespace wfp
