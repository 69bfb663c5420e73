// Test-only diagnostics of the socket lookup, kept out of the production
// addon: the tests and benchmarks load them from the conformance addon.
#ifndef WFP_REDIRECT_SOCKET_PROBE_H_
#define WFP_REDIRECT_SOCKET_PROBE_H_

#include <napi.h>

namespace wfp {
namespace testing {

// Adds to `exports`:
//   describeSocket(osSocket) -> { localAddress, localPort, localScope,
//                                 remoteAddress, remotePort, remoteScope }
//       the addresses the OS reports for that socket (ERR_WFP_SOCKET_NOT_FOUND
//       when it has none: closed, or not a connected TCP socket);
//   describeLocal(osSocket) -> { address, port }
//       getsockname alone: it answers for a socket whose peer has gone, and
//       says port 0 for a socket that is not bound;
//   findTcpSocket(localAddress, localPort, remoteAddress, remotePort)
//       -> { socket: number | null, handlesVisited, socketsChecked, usedFullWalk }
//       the production lookup (native/socket_lookup.cc) on this thread's loop,
//       with how far it went.
void AddSocketProbe(Napi::Env env, Napi::Object exports);

}  // namespace testing
}  // namespace wfp

#endif  // WFP_REDIRECT_SOCKET_PROBE_H_
