// Systems without netfilter have no socket marks (native/socket_mark.h).
#include "../socket_mark.h"

#include <errno.h>

namespace wfp {

bool PlatformHasSocketMark() { return false; }
int SetSocketMark(OsSocket, uint32_t) { return ENOTSUP; }

}  // namespace wfp
