#include "../original_destination.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../sockaddr_endpoint.h"

namespace wfp {
namespace {

// <linux/netfilter_ipv4.h> SO_ORIGINAL_DST and
// <linux/netfilter_ipv6/ip6_tables.h> IP6T_SO_ORIGINAL_DST, both 80; their
// headers do not mix well with the C library's, so the value is stated here.
constexpr int kSoOriginalDst = 80;

}  // namespace

bool PlatformHasNetfilter() { return true; }

OriginalDestinationResult QueryOriginalDestination(OsSocket socket, Endpoint* out,
                                                   int* error) {
  Endpoint local;
  if (!ReadSocketEndpoint(socket, EndpointSide::kLocal, &local)) {
    *error = errno;
    return OriginalDestinationResult::kError;
  }
  // An IPv4 connection, even on a dual-stack IPv6 socket, is tracked by the
  // IPv4 table.
  const int level = IsMappedIpv4(local) ? SOL_IP : SOL_IPV6;
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (getsockopt(static_cast<int>(socket), level, kSoOriginalDst, &storage, &length) != 0) {
    *error = errno;
    // ENOENT: conntrack has no entry; ENOPROTOOPT: netfilter's NAT is not loaded.
    return *error == ENOENT || *error == ENOPROTOOPT ? OriginalDestinationResult::kNoRecord
                                                     : OriginalDestinationResult::kError;
  }
  *error = 0;
  return EndpointFromSockaddr(storage, length, out) ? OriginalDestinationResult::kFound
                                                    : OriginalDestinationResult::kNoRecord;
}

}  // namespace wfp
