#include "socket_lookup.h"

#include <cstddef>
#include <cstring>

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
// was just accepted or connected is the newest TCP handle there. Both
// spellings of the field, `struct uv__queue` (libuv >= 1.45) and `void*[2]`
// (before), are two pointers {next, prev}; that layout is read here.
struct QueueLink {
  QueueLink* next;
  QueueLink* prev;
};

static_assert(sizeof(static_cast<uv_loop_t*>(nullptr)->handle_queue) ==
                  sizeof(QueueLink),
              "libuv's handle_queue is no longer two pointers");

enum class WalkResult { kFound, kNotFound, kQueueLooksWrong };

WalkResult WalkFromTail(uv_loop_t* loop, const Endpoint& local,
                        const Endpoint& peer, OsSocket* found,
                        LookupStats* stats) {
  QueueLink* head = reinterpret_cast<QueueLink*>(&loop->handle_queue);
  const size_t link_offset = offsetof(uv_handle_t, handle_queue);
  if (head->prev == nullptr || head->prev->next != head) {
    return WalkResult::kQueueLooksWrong;
  }
  for (QueueLink* link = head->prev; link != head; link = link->prev) {
    if (link == nullptr || link->next->prev != link) {
      return WalkResult::kQueueLooksWrong;
    }
    uv_handle_t* handle = reinterpret_cast<uv_handle_t*>(
        reinterpret_cast<char*>(link) - link_offset);
    if (handle->loop != loop) return WalkResult::kQueueLooksWrong;
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
  return a.port == b.port && std::memcmp(a.address, b.address, 16) == 0;
}

bool ParseEndpoint(const std::string& address, double port, Endpoint* out) {
  if (!(port >= 1 && port <= 65535) || port != static_cast<int>(port)) {
    return false;
  }
  out->port = static_cast<uint16_t>(port);
  const std::string bare = address.substr(0, address.find('%'));
  if (uv_inet_pton(AF_INET6, bare.c_str(), out->address) == 0) return true;
  uint8_t v4[4];
  if (uv_inet_pton(AF_INET, bare.c_str(), v4) != 0) return false;
  StoreMappedIpv4(v4, out);
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
