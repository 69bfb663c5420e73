// Finding the OS socket behind a net.Socket with public libuv API only.
//
// Node does not expose the SOCKET of a net.Socket on Windows (_handle.fd is
// -1 there). Every TCP handle of a thread is on that thread's libuv loop, and
// a connected TCP socket is named uniquely by its local and peer addresses,
// so the lookup matches the addresses the OS reports for each TCP handle's
// socket against the ones net.Socket reports.
#ifndef WFP_REDIRECT_SOCKET_LOOKUP_H_
#define WFP_REDIRECT_SOCKET_LOOKUP_H_

#include <uv.h>

#include <string>

#include "os_socket.h"

namespace wfp {

// Parses "127.0.0.1", "::1", "::ffff:127.0.0.1" or "fe80::1%eth0" (the
// interface by name, or by index as Windows spells it) and a port; false when
// either is not valid. A scope naming no interface of this host is kept as 0
// (not known).
bool ParseEndpoint(const std::string& address, double port, Endpoint* out);

// The text form Node uses: dotted IPv4 for IPv4 and IPv4-mapped addresses,
// RFC 5952 IPv6 otherwise.
std::string FormatAddress(const Endpoint& endpoint);

struct LookupStats {
  size_t handles_visited;  // how far the search went, for tests and benchmarks
  size_t sockets_checked;  // open TCP handles whose addresses were asked of the OS
  bool used_full_walk;     // the queue looked wrong and uv_walk was used
};

// Searches the loop's open TCP handles, newest first, for the one whose OS
// socket has exactly these local and peer endpoints. `stats` may be null.
bool FindTcpSocket(uv_loop_t* loop, const Endpoint& local, const Endpoint& peer,
                   OsSocket* found, LookupStats* stats);

}  // namespace wfp

#endif  // WFP_REDIRECT_SOCKET_LOOKUP_H_
