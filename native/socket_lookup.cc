#include "socket_lookup.h"

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace wfp {
namespace {

// uv_fileno hands out an int on POSIX and a HANDLE (the SOCKET) on Windows.
inline OsSocket ToOsSocket(int fd) { return static_cast<OsSocket>(fd); }
inline OsSocket ToOsSocket(void* handle) {
  return static_cast<OsSocket>(reinterpret_cast<uintptr_t>(handle));
}

bool IsOurSocket(uv_handle_t* handle, const Endpoint& local,
                 const Endpoint& peer, OsSocket* found, LookupStats* stats) {
  ++stats->handles_visited;
  if (uv_handle_get_type(handle) != UV_TCP || uv_is_closing(handle)) {
    return false;
  }
  uv_os_fd_t fd;
  if (uv_fileno(handle, &fd) != 0) return false;
  ++stats->sockets_checked;
  const OsSocket socket = ToOsSocket(fd);
  Endpoint seen;
  // The peer first: it tells connections apart, the local side mostly does not.
  if (!ReadSocketEndpoint(socket, EndpointSide::kPeer, &seen) || !(seen == peer)) {
    return false;
  }
  if (!ReadSocketEndpoint(socket, EndpointSide::kLocal, &seen) || !(seen == local)) {
    return false;
  }
  *found = socket;
  return true;
}

// libuv links every handle of a loop into the circular queue that starts at
// loop->handle_queue, appending each new handle at the tail: a socket that
// was just accepted or connected is the newest TCP handle there. The field is
// `struct uv__queue {next, prev}` (libuv >= 1.45, which every supported Node
// has); this is the layout read here. The offsets are libuv 1.x's ABI, so a
// header that moved them fails the build instead of being misread.
struct QueueLink {
  QueueLink* next;
  QueueLink* prev;
};

static_assert(std::is_same<decltype(uv_loop_t::handle_queue), uv__queue>::value &&
                  std::is_same<decltype(uv_handle_t::handle_queue), uv__queue>::value,
              "libuv's handle_queue is no longer a struct uv__queue");
static_assert(sizeof(uv__queue) == sizeof(QueueLink) &&
                  offsetof(uv__queue, next) == offsetof(QueueLink, next) &&
                  offsetof(uv__queue, prev) == offsetof(QueueLink, prev),
              "struct uv__queue is no longer {next, prev}");
static_assert(offsetof(uv_loop_t, handle_queue) == 2 * sizeof(void*) &&
                  offsetof(uv_handle_t, handle_queue) == 4 * sizeof(void*) &&
                  offsetof(uv_handle_t, loop) == sizeof(void*),
              "uv_loop_t or uv_handle_t moved a field libuv 1.x's ABI fixes");

// How far before the queue field a handle starts. Test builds of the lookup
// (test/native) can define WFP_REDIRECT_TEST_MISREAD_QUEUE to read one
// pointer off, as a libuv with another layout would look at run time, and so
// prove that the checks below notice and uv_walk takes over.
#ifdef WFP_REDIRECT_TEST_MISREAD_QUEUE
constexpr size_t kLinkOffset = offsetof(uv_handle_t, handle_queue) - sizeof(void*);
#else
constexpr size_t kLinkOffset = offsetof(uv_handle_t, handle_queue);
#endif

// More handles than any loop holds: a walk this long is going round a cycle
// that misses the head.
constexpr size_t kMaxQueueLength = size_t{1} << 24;

enum class WalkResult { kFound, kNotFound, kQueueLooksWrong };

// Every pointer is checked before it is followed: a link must be non-null and
// linked both ways, and the handle it belongs to must name this loop and a
// known handle type.
WalkResult WalkFromTail(uv_loop_t* loop, const Endpoint& local,
                        const Endpoint& peer, OsSocket* found,
                        LookupStats* stats) {
  QueueLink* head = reinterpret_cast<QueueLink*>(&loop->handle_queue);
  if (head->prev == nullptr || head->next == nullptr || head->prev->next != head) {
    return WalkResult::kQueueLooksWrong;
  }
  size_t walked = 0;
  for (QueueLink* link = head->prev; link != head; link = link->prev) {
    if (link == nullptr || link->next == nullptr || link->prev == nullptr ||
        link->next->prev != link || ++walked > kMaxQueueLength) {
      return WalkResult::kQueueLooksWrong;
    }
    uv_handle_t* handle = reinterpret_cast<uv_handle_t*>(
        reinterpret_cast<char*>(link) - kLinkOffset);
    if (handle->loop != loop || handle->type <= UV_UNKNOWN_HANDLE ||
        handle->type >= UV_HANDLE_TYPE_MAX) {
      return WalkResult::kQueueLooksWrong;
    }
    if (IsOurSocket(handle, local, peer, found, stats)) return WalkResult::kFound;
  }
  return WalkResult::kNotFound;
}

struct FullWalk {
  const Endpoint* local;
  const Endpoint* peer;
  OsSocket socket;
  bool found;
  LookupStats* stats;
};

void VisitHandle(uv_handle_t* handle, void* arg) {
  FullWalk* walk = static_cast<FullWalk*>(arg);
  if (walk->found) return;
  walk->found = IsOurSocket(handle, *walk->local, *walk->peer, &walk->socket, walk->stats);
}

}  // namespace

bool operator==(const Endpoint& a, const Endpoint& b) {
  if (a.port != b.port || std::memcmp(a.address, b.address, 16) != 0) return false;
  const bool link_local = a.address[0] == 0xfe && (a.address[1] & 0xc0) == 0x80;
  return !link_local || a.scope_id == 0 || b.scope_id == 0 || a.scope_id == b.scope_id;
}

bool ParseEndpoint(const std::string& address, double port, Endpoint* out) {
  if (!(port >= 1 && port <= 65535) || port != static_cast<int>(port)) {
    return false;
  }
  out->port = static_cast<uint16_t>(port);
  // uv_ip6_addr reads the scope: an interface name on POSIX, a number on Windows.
  sockaddr_in6 in6{};
  if (uv_ip6_addr(address.c_str(), 0, &in6) == 0) {
    std::memcpy(out->address, &in6.sin6_addr, 16);
    out->scope_id = in6.sin6_scope_id;
    return true;
  }
  uint8_t v4[4];
  if (uv_inet_pton(AF_INET, address.c_str(), v4) != 0) return false;
  StoreMappedIpv4(v4, out);
  out->scope_id = 0;
  return true;
}

std::string FormatAddress(const Endpoint& endpoint) {
  char text[64] = "";
  if (IsMappedIpv4(endpoint)) {
    uv_inet_ntop(AF_INET, endpoint.address + 12, text, sizeof text);
  } else {
    uv_inet_ntop(AF_INET6, endpoint.address, text, sizeof text);
  }
  return text;
}

bool FindTcpSocket(uv_loop_t* loop, const Endpoint& local, const Endpoint& peer,
                   OsSocket* found, LookupStats* stats) {
  LookupStats ignored;
  if (stats == nullptr) stats = &ignored;
  *stats = LookupStats{0, 0, false};
  switch (WalkFromTail(loop, local, peer, found, stats)) {
    case WalkResult::kFound:
      return true;
    case WalkResult::kNotFound:
      return false;
    case WalkResult::kQueueLooksWrong:
      break;
  }
  // The queue is not what this code expects of libuv: fall back to the
  // public walk, slower but always right.
  *stats = LookupStats{0, 0, true};
  FullWalk walk{&local, &peer, 0, false, stats};
  uv_walk(loop, VisitHandle, &walk);
  if (walk.found) *found = walk.socket;
  return walk.found;
}

}  // namespace wfp
