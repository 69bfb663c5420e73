// See relay_engine.h. Linux and Windows; the socket calls are in
// relay_socket_posix.cc and relay_socket_win.cc, and what only Linux has
// (splice(2), connecting natively) is marked so below.
#include "relay_engine.h"

#if defined(__linux__)
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cstring>
#include <vector>

namespace wfp {
namespace {

// At most this many reads per direction per wake-up, so that one fast
// connection does not starve the rest of the loop (the polls are
// level-triggered: what is left wakes the loop again). 4 rather than 16:
// interleaved 1 GiB runs here gave eight streams 1,319-1,384 MB/s with 4 (and
// 1,303-1,395 with 2) against 1,093-1,281 with 16 and 1,208-1,250 with 64.
constexpr int kRoundsPerWakeUp = 4;

// What one splice into a direction's pipe asks for: its default capacity.
constexpr size_t kPipeBytes = 64 * 1024;

struct Direction {
  std::vector<uint8_t> buffer;  // what the destination did not take yet; empty (no memory) otherwise
  size_t start = 0;             // bytes [start, end) wait to be written
  size_t end = 0;
  // Linux, once the direction has moved settings.splice_after bytes: a pipe
  // that splice(2) moves them through, socket to pipe to socket, without
  // copying them into this process. -1 until then (short connections never
  // pay for it), and always elsewhere.
  int pipe[2] = {-1, -1};
  size_t in_pipe = 0;  // bytes in the pipe, waiting to be written
  bool ended = false;  // the source sent its FIN (read gave 0)
  bool shut = false;   // the destination was shut for writing
  uint64_t bytes = 0;  // written to the destination
};

// Bytes read from the source and not yet written to the destination.
size_t Waiting(const Direction& direction) { return direction.end - direction.start + direction.in_pipe; }

}  // namespace

class Relay {
 public:
  uv_loop_t* loop = nullptr;
  RelaySocket sockets[2] = {kNoRelaySocket, kNoRelaySocket};  // a, b
  uv_poll_t polls[2];
  uv_timer_t timer;
  Direction directions[2];  // [0]: a -> b (up); [1]: b -> a (down)
  RelaySettings settings{};
  RelayDone done = nullptr;
  void* data = nullptr;
  uint64_t last_activity = 0;
  bool half_closed = false;
  int watched[2] = {0, 0};  // the events each poll waits for
  bool polling[2] = {false, false};  // polls[i] is an initialized handle
  bool connecting = false;  // ConnectAndRelay: b is not connected yet
  // ConnectAndRelay: b's local port was the target's (network order), so it
  // may have connected to itself; only then is that asked (two system calls).
  bool may_meet_itself = false;
  bool closing = false;
  int open_handles = 0;
  const char* code = nullptr;
};

namespace {

void OnClosed(uv_handle_t* handle) {
  Relay* relay = static_cast<Relay*>(handle->data);
  if (--relay->open_handles > 0) return;
  for (const RelaySocket socket : relay->sockets) {
    if (socket != kNoRelaySocket) CloseRelaySocket(socket);
  }
#if defined(__linux__)
  for (const Direction& direction : relay->directions) {
    for (const int fd : direction.pipe) {
      if (fd >= 0) close(fd);
    }
  }
#endif
  const RelayOutcome outcome{relay->directions[0].bytes, relay->directions[1].bytes, relay->code};
  RelayDone done = relay->done;
  void* data = relay->data;
  delete relay;
  done(data, outcome);
}

// Closes the polls and the timer; the sockets close once libuv has let go.
void Close(Relay* relay, const char* code) {
  if (relay->closing) return;
  relay->closing = true;
  relay->code = code;
  relay->open_handles = 1;
  for (int side = 0; side < 2; ++side) {
    if (!relay->polling[side]) continue;
    ++relay->open_handles;
    uv_close(reinterpret_cast<uv_handle_t*>(&relay->polls[side]), OnClosed);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&relay->timer), OnClosed);
}

uint64_t CurrentLimit(const Relay* relay) {
  const uint64_t idle = relay->settings.idle_ms;
  const uint64_t half = relay->settings.half_close_ms;
  if (!relay->half_closed || half == 0) return idle;
  return idle == 0 ? half : std::min(idle, half);
}

void OnTimer(uv_timer_t* timer) {
  Relay* relay = static_cast<Relay*>(timer->data);
  if (relay->closing) return;
  // Only the connect's time runs while connecting.
  if (relay->connecting) {
    Close(relay, "ETIMEDOUT");
    return;
  }
  const uint64_t limit = CurrentLimit(relay);
  if (limit == 0) return;
  const uint64_t idle = uv_now(relay->loop) - relay->last_activity;
  if (idle >= limit) {
    Close(relay, relay->half_closed ? "ERR_HALF_CLOSE_TIMEOUT" : "ERR_IDLE_TIMEOUT");
    return;
  }
  uv_timer_start(&relay->timer, OnTimer, limit - idle, 0);
}

// Activity only stamps the time: the timer, when it fires, looks at how long
// ago that was and waits the rest (no timer re-armed per chunk).
void Touch(Relay* relay) { relay->last_activity = uv_now(relay->loop); }

// A side ended its half: from now on the (shorter) half-close time applies,
// counted from now, as the JS relay's setTimeout on 'end' does.
void HalfClosed(Relay* relay) {
  if (relay->half_closed || relay->settings.half_close_ms == 0) return;
  relay->half_closed = true;
  Touch(relay);
  uv_timer_start(&relay->timer, OnTimer, CurrentLimit(relay), 0);
}

// The source's FIN, once everything before it went: shuts the destination
// for writing (once). False once the relay has failed.
bool PassOnEnd(Relay* relay, Direction& direction, RelaySocket to) {
  if (direction.shut) return true;
  direction.shut = true;
  // ENOTCONN: the destination is gone already; its own read reports how.
  const int error = ShutdownWrite(to);
  if (error != 0 && !NotConnected(error)) {
    Close(relay, RelayErrorCode(error));
    return false;
  }
  return true;
}

#if defined(__linux__)
// Moves what it can in one direction through its pipe (PumpThroughPipe's
// rounds are Pump's, with splice in place of read and send). False once the
// relay has failed.
bool PumpThroughPipe(Relay* relay, Direction& direction, int from, int to) {
  for (int round = 0; round < kRoundsPerWakeUp; ++round) {
    if (direction.in_pipe > 0) {
      const ssize_t sent = splice(direction.pipe[0], nullptr, to, nullptr, direction.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        if (errno == EINTR) continue;
        Close(relay, RelayErrorCode(errno));
        return false;
      }
      direction.in_pipe -= static_cast<size_t>(sent);
      direction.bytes += static_cast<uint64_t>(sent);
      Touch(relay);
      if (direction.in_pipe > 0) return true;  // the socket is full
    }
    if (direction.ended) return PassOnEnd(relay, direction, to);
    // The pipe is empty here: EAGAIN means the source has nothing now.
    const ssize_t got = splice(from, nullptr, direction.pipe[1], nullptr, kPipeBytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (got > 0) {
      direction.in_pipe = static_cast<size_t>(got);
      Touch(relay);
      continue;
    }
    if (got == 0) {
      direction.ended = true;
      HalfClosed(relay);
      return PassOnEnd(relay, direction, to);  // as in Pump: not left for a next round
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    if (errno == EINTR) continue;
    Close(relay, RelayErrorCode(errno));
    return false;
  }
  return true;
}

// Whether the direction moves through a pipe from now on: once it has moved
// splice_after bytes and its buffer is empty (what was read into it goes
// first). A pipe the system refuses (out of descriptors) leaves it copying.
bool Spliced(Relay* relay, Direction& direction) {
  if (direction.pipe[0] >= 0) return true;
  const uint64_t after = relay->settings.splice_after;
  if (after == 0 || direction.bytes < after || direction.start < direction.end || direction.ended) return false;
  // On failure pipe2 leaves the descriptors as they were (-1): copying goes on.
  return pipe2(direction.pipe, O_NONBLOCK | O_CLOEXEC) == 0;
}
#else
bool Spliced(Relay*, Direction&) { return false; }
bool PumpThroughPipe(Relay*, Direction&, RelaySocket, RelaySocket) { return false; }
#endif

// Room for one read, shared by every relay of this thread: a read lands here
// and is sent at once; only what the destination does not take is kept, in
// the direction's own buffer. An idle connection holds no buffer at all.
uint8_t* Scratch(size_t bytes) {
  thread_local std::vector<uint8_t> scratch;
  if (scratch.size() < bytes) scratch.resize(bytes);
  return scratch.data();
}

// Keeps `length` bytes the destination did not take, to be written first.
void Keep(Direction& direction, const uint8_t* bytes, size_t length) {
  direction.buffer.assign(bytes, bytes + length);
  direction.start = 0;
  direction.end = length;
}

// Frees the kept bytes' buffer once they are written.
void Release(Direction& direction) {
  std::vector<uint8_t>().swap(direction.buffer);
  direction.start = direction.end = 0;
}

// Moves what it can in one direction: writes what was kept, then reads and
// sends, keeping what the destination does not take; reads nothing while
// anything is kept (backpressure). False once the relay has failed.
bool Pump(Relay* relay, int index) {
  Direction& direction = relay->directions[index];
  const RelaySocket from = relay->sockets[index];
  const RelaySocket to = relay->sockets[1 - index];
  if (Spliced(relay, direction)) return PumpThroughPipe(relay, direction, from, to);
  int error = 0;
  for (int round = 0; round < kRoundsPerWakeUp; ++round) {
    if (direction.start < direction.end) {
      const long sent = SendSome(to, direction.buffer.data() + direction.start, direction.end - direction.start, &error);
      if (sent < 0) {
        if (WouldBlock(error)) return true;
        if (Interrupted(error)) continue;
        Close(relay, RelayErrorCode(error));
        return false;
      }
      direction.start += static_cast<size_t>(sent);
      direction.bytes += static_cast<uint64_t>(sent);
      Touch(relay);
      if (direction.start < direction.end) return true;  // the socket is full
      Release(direction);
    }
    if (direction.ended) return PassOnEnd(relay, direction, to);
    uint8_t* scratch = Scratch(relay->settings.buffer_bytes);
    const long got = ReceiveSome(from, scratch, relay->settings.buffer_bytes, &error);
    if (got > 0) {
      Touch(relay);
      long sent = SendSome(to, scratch, static_cast<size_t>(got), &error);
      if (sent < 0) {
        if (!WouldBlock(error) && !Interrupted(error)) {
          Close(relay, RelayErrorCode(error));
          return false;
        }
        sent = 0;
      }
      direction.bytes += static_cast<uint64_t>(sent);
      if (sent < got) {
        Keep(direction, scratch + sent, static_cast<size_t>(got - sent));
        return true;  // the socket is full: its poll says when it takes more
      }
      // A short read took all the socket had: the next would only say so
      // (EAGAIN), a system call per wake-up; what comes later (a FIN too)
      // wakes the level-triggered poll again.
      if (static_cast<size_t>(got) < relay->settings.buffer_bytes) return true;
      continue;
    }
    if (got == 0) {
      direction.ended = true;
      HalfClosed(relay);
      // Nothing is kept (a read comes only then): the FIN goes on now. Not
      // in a next round: this may be the budget's last, and nothing would wake
      // this direction again (its source is not polled once it ended, its
      // destination only while bytes wait for it).
      return PassOnEnd(relay, direction, to);
    }
    if (WouldBlock(error)) return true;
    if (Interrupted(error)) continue;
    Close(relay, RelayErrorCode(error));
    return false;
  }
  return true;
}

void OnPoll(uv_poll_t* handle, int status, int events);

// Each socket's poll waits for what its two directions need: readable while
// its outgoing buffer is empty and it has not ended, writable while bytes
// wait for it. Ends the relay once both directions have.
void Update(Relay* relay) {
  if (relay->closing) return;
  if (relay->directions[0].shut && relay->directions[1].shut) {
    Close(relay, nullptr);
    return;
  }
  for (int side = 0; side < 2; ++side) {
    const Direction& outgoing = relay->directions[side];
    const Direction& incoming = relay->directions[1 - side];
    int wanted = 0;
    if (!outgoing.ended && Waiting(outgoing) == 0) wanted |= UV_READABLE;
    if (Waiting(incoming) > 0) wanted |= UV_WRITABLE;
    if (wanted == relay->watched[side]) continue;
    relay->watched[side] = wanted;
    const int result = wanted == 0 ? uv_poll_stop(&relay->polls[side])
                                   : uv_poll_start(&relay->polls[side], wanted, OnPoll);
    if (result != 0) {
      Close(relay, uv_err_name(result));
      return;
    }
  }
}

// Starts the idle timer and moves what both sockets hold already.
void Begin(Relay* relay) {
  Touch(relay);
  if (CurrentLimit(relay) > 0) uv_timer_start(&relay->timer, OnTimer, CurrentLimit(relay), 0);
  if (Pump(relay, 0) && Pump(relay, 1)) Update(relay);
}

#if defined(__linux__)
// Whether a connected socket's local endpoint is its peer: Linux connects a
// socket to a closed local port in the ephemeral range from that very port,
// now and then (TCP simultaneous open with itself), and such a socket echoes
// what it is sent, so the client would read its own bytes back as the
// destination's answer. Nothing listens there: a refusal.
bool ConnectedToItself(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t local_length = sizeof(local), peer_length = sizeof(peer);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) != 0 ||
      getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0 || local.ss_family != peer.ss_family) {
    return false;
  }
  if (local.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(local);
    const auto& b = reinterpret_cast<const sockaddr_in&>(peer);
    return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
  }
  if (local.ss_family != AF_INET6) return false;
  const auto& a = reinterpret_cast<const sockaddr_in6&>(local);
  const auto& b = reinterpret_cast<const sockaddr_in6&>(peer);
  return a.sin6_port == b.sin6_port && std::memcmp(&a.sin6_addr, &b.sin6_addr, sizeof(a.sin6_addr)) == 0;
}

// An IPv4 or IPv6 address's port, in network order (0 for any other family).
uint16_t PortOf(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) return reinterpret_cast<const sockaddr_in&>(address).sin_port;
  if (address.ss_family == AF_INET6) return reinterpret_cast<const sockaddr_in6&>(address).sin6_port;
  return 0;
}

// B's connect ended (its poll said writable or failed): relay, or end with
// the connect's error. A failed connect leaves an error on the socket, which
// makes it POLLERR, which libuv reports as status < 0: only then is the
// socket asked why (a system call a connection saves otherwise).
void Connected(Relay* relay, int status) {
  if (status < 0) {
    int error = 0;
    if (!PendingError(relay->sockets[1], &error)) error = errno;
    Close(relay, error != 0 ? RelayErrorCode(error) : uv_err_name(status));
    return;
  }
  if (relay->may_meet_itself && ConnectedToItself(relay->sockets[1])) {
    Close(relay, "ECONNREFUSED");
    return;
  }
  relay->connecting = false;
  uv_timer_stop(&relay->timer);
  Begin(relay);
}

// A poll while B connects (ConnectAndRelay).
void OnConnectingPoll(Relay* relay, int side, int status) {
  if (side == 1) return Connected(relay, status);
  // A while B connects: its reset ends the relay now, as the streams relay
  // (reading it) would see, not at the connect's time; its FIN alone does
  // not (what it sent goes once B is connected), so the watch stops.
  if (status < 0) {
    int error = 0;
    const bool known = PendingError(relay->sockets[0], &error) && error != 0;
    Close(relay, known ? RelayErrorCode(error) : uv_err_name(status));
    return;
  }
  relay->watched[0] = 0;
  const int stopped = uv_poll_stop(&relay->polls[0]);
  if (stopped != 0) Close(relay, uv_err_name(stopped));
}
#endif  // defined(__linux__)

void OnPoll(uv_poll_t* handle, int status, int events) {
  Relay* relay = static_cast<Relay*>(handle->data);
  if (relay->closing) return;
  const int side = handle == &relay->polls[0] ? 0 : 1;
#if defined(__linux__)
  if (relay->connecting) return OnConnectingPoll(relay, side, status);
#endif
  if (status < 0) {
    // libuv answers any POLLERR so, without reading: what the socket received
    // before its error (an answer, then a reset) is still there to read, and a
    // stream would have read it. Pass on what the other side takes now (the
    // read that meets the error ends the relay with its code), then end.
    if (!Pump(relay, side)) return;
    // libuv says EBADF for any POLLERR; the socket knows the real error.
    int error = 0;
    if (PendingError(relay->sockets[side], &error) && error != 0) {
      Close(relay, RelayErrorCode(error));
    } else {
      Close(relay, uv_err_name(status));
    }
    return;
  }
  if ((events & UV_WRITABLE) != 0 && !Pump(relay, 1 - side)) return;
  if ((events & UV_READABLE) != 0 && !Pump(relay, side)) return;
  Update(relay);
}

Relay* NewRelay(uv_loop_t* loop, RelaySocket a, RelaySocket b, const RelaySettings& settings, RelayDone done,
               void* data) {
  Relay* relay = new Relay();
  relay->loop = loop;
  relay->sockets[0] = a;
  relay->sockets[1] = b;
  relay->settings = settings;
  relay->done = done;
  relay->data = data;
  uv_timer_init(loop, &relay->timer);  // cannot fail
  relay->timer.data = relay;
  return relay;
}

// Makes the poll of sockets[side]; false, with the relay ending on libuv's error, when it cannot.
bool Watch(Relay* relay, int side) {
  const int result = uv_poll_init_socket(relay->loop, &relay->polls[side], relay->sockets[side]);
  if (result != 0) {
    Close(relay, uv_err_name(result));
    return false;
  }
  relay->polls[side].data = relay;
  relay->polling[side] = true;
  return true;
}

// Sends `length` bytes from `bytes` first in `direction`.
void Preload(Direction& direction, const uint8_t* bytes, size_t length) {
  direction.buffer.resize(length);
  if (length > 0) std::memcpy(direction.buffer.data(), bytes, length);
  direction.start = 0;
  direction.end = length;
}

}  // namespace

int StartRelay(uv_loop_t* loop, RelaySocket a, RelaySocket b, const RelaySettings& settings,
               const uint8_t* up, size_t up_length, const uint8_t* down,
               size_t down_length, RelayDone done, void* data, Relay** out) {
  if (a == b || !PrepareStreamSocket(a) || !PrepareStreamSocket(b)) {
    CloseRelaySocket(a);
    if (b != a) CloseRelaySocket(b);
    return UV_ENOTSOCK;
  }
  Relay* relay = NewRelay(loop, a, b, settings, done, data);
  *out = relay;
  Preload(relay->directions[0], up, up_length);
  Preload(relay->directions[1], down, down_length);
  if (!Watch(relay, 0) || !Watch(relay, 1)) return 0;
  NoDelay(a);
  NoDelay(b);
  // Bytes handed over go at once; so does whatever the sockets hold already.
  Begin(relay);
  return 0;
}

#if defined(__linux__)
int ConnectAndRelay(uv_loop_t* loop, int a, bool a_ready, const ConnectTarget& target,
                    const RelaySettings& settings, RelayDone done, void* data,
                    Relay** out, sockaddr_storage* local, socklen_t* local_length) {
  *local_length = 0;
  if (!a_ready && !PrepareStreamSocket(a)) {
    close(a);
    return UV_ENOTSOCK;
  }
  Relay* relay = NewRelay(loop, a, -1, settings, done, data);
  *out = relay;
  if (!Watch(relay, 0)) return 0;
  if (target.refusal != nullptr) {
    Close(relay, target.refusal);
    return 0;
  }
  const int b = socket(target.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (b < 0) {
    Close(relay, RelayErrorCode(errno));
    return 0;
  }
  relay->sockets[1] = b;
  NoDelay(a);
  NoDelay(b);
  if (target.mark >= 0) {
    const uint32_t mark = static_cast<uint32_t>(target.mark);
    if (setsockopt(b, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) {
      Close(relay, RelayErrorCode(errno));
      return 0;
    }
  }
  relay->connecting = true;
  if (connect(b, reinterpret_cast<const sockaddr*>(&target.address), target.length) != 0 && errno != EINPROGRESS) {
    Close(relay, RelayErrorCode(errno));
    return 0;
  }
  socklen_t length = sizeof(*local);
  if (getsockname(b, reinterpret_cast<sockaddr*>(local), &length) == 0) *local_length = length;
  relay->may_meet_itself = *local_length == 0 || PortOf(*local) == PortOf(target.address);
  if (!Watch(relay, 1)) return 0;
  relay->watched[1] = UV_WRITABLE;
  const int result = uv_poll_start(&relay->polls[1], UV_WRITABLE, OnPoll);
  if (result != 0) {
    Close(relay, uv_err_name(result));
    return 0;
  }
  // A client that goes while this connects is seen at once (OnPoll): a
  // reset or a hang-up; nothing it sends wakes the loop before then.
  relay->watched[0] = UV_DISCONNECT;
  const int watching = uv_poll_start(&relay->polls[0], UV_DISCONNECT, OnPoll);
  if (watching != 0) {
    Close(relay, uv_err_name(watching));
    return 0;
  }
  if (target.connect_ms > 0) uv_timer_start(&relay->timer, OnTimer, target.connect_ms, 0);
  return 0;
}
#endif  // defined(__linux__)

void DestroyRelay(Relay* relay) { Close(relay, nullptr); }

}  // namespace wfp
