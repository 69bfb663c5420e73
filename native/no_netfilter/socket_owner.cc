// Windows and the BSDs: no sock_diag, no /proc (native/socket_owner.h). On
// Windows the owner-pid tables answer instead (native/win/owner_pid_table.cc).
#include "../socket_owner.h"

#include <errno.h>

namespace wfp {

bool PlatformHasSocketDiag() { return false; }

DiagResult FindSocketIdentity(bool, const Endpoint&, const Endpoint&, SocketIdentity*, int* error) {
  *error = ENOSYS;
  return DiagResult::kError;
}

bool HoldsSocket(int, int, uint32_t) { return false; }

OwnerScan FindSocketHolder(uint32_t, uint32_t, const std::vector<int>&, uint32_t) { return OwnerScan{}; }

}  // namespace wfp
