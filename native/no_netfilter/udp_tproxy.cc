// Systems without netfilter have no TPROXY (native/udp_tproxy.h).
#include "../udp_tproxy.h"

#include <errno.h>

namespace wfp {

bool PlatformHasTproxy() { return false; }
int EnableTproxy(int, int) { return ENOTSUP; }
bool ReadOriginalDestination(const ControlMessage&, Endpoint*) { return false; }
int SendFromAddress(int, const uint8_t*, size_t, const Endpoint&, const Endpoint&, const char** syscall) {
  *syscall = "sendmsg";
  return ENOTSUP;
}

}  // namespace wfp
