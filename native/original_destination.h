// Where an accepted connection was going before the kernel redirected it:
// netfilter's record on Linux (native/linux/), nothing elsewhere
// (native/no_netfilter/; on Windows the WFP redirect context tells instead).
#ifndef WFP_REDIRECT_ORIGINAL_DESTINATION_H_
#define WFP_REDIRECT_ORIGINAL_DESTINATION_H_

#include "os_socket.h"

namespace wfp {

bool PlatformHasNetfilter();

enum class OriginalDestinationResult { kFound, kNoRecord, kError };

// SO_ORIGINAL_DST (IPv4) / IP6T_SO_ORIGINAL_DST (IPv6): the destination of the
// connection's conntrack entry before NAT. kNoRecord when netfilter keeps
// none for it; kError with `error` (errno) otherwise.
OriginalDestinationResult QueryOriginalDestination(OsSocket socket, Endpoint* out,
                                                   int* error);

}  // namespace wfp

#endif  // WFP_REDIRECT_ORIGINAL_DESTINATION_H_
