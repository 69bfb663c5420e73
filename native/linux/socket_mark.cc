#include "../socket_mark.h"

#include <errno.h>
#include <sys/socket.h>

namespace wfp {

bool PlatformHasSocketMark() { return true; }

int SetSocketMark(OsSocket socket, uint32_t mark) {
  return setsockopt(static_cast<int>(socket), SOL_SOCKET, SO_MARK, &mark, sizeof mark) == 0 ? 0 : errno;
}

}  // namespace wfp
