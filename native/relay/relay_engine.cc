// See relay_engine.h. Linux and Windows; the socket calls are in
// relay_socket_posix.cc and relay_socket_win.cc, and what only Linux has
// (splice(2), connecting natively) is marked so below.
#include "relay_engine.h"

#if defined(__linux__)
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_epoll_set.h"
#endif

#include <algorithm>
#include <cstring>
#include <vector>

namespace wfp {
namespace {

// At most this many reads per direction per wake-up, so that one fast
// connection does not starve the rest of the loop (what is left is moved on
// the loop's next turn). 4 rather than 16:
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

#if !defined(__linux__)
// Bytes read from the source and not yet written to the destination (what a
// level-triggered poll must wait for).
size_t Waiting(const Direction& direction) { return direction.end - direction.start + direction.in_pipe; }
#endif

}  // namespace

class Relay {
 public:
  uv_loop_t* loop = nullptr;
  RelaySocket sockets[2] = {kNoRelaySocket, kNoRelaySocket};  // a, b
  uv_timer_t timer;
  Direction directions[2];  // [0]: a -> b (up); [1]: b -> a (down)
  RelaySettings settings{};
  RelayDone done = nullptr;
  void* data = nullptr;
  uint64_t last_activity = 0;
  bool half_closed = false;
  // Whether a read from / a write to sockets[i] may get anywhere: set by the
  // socket's events, cleared when it answers EAGAIN (or a read takes less
  // than it could: all the socket had). No system call is made that an event
  // has not made worth trying.
  bool may_read[2] = {false, false};
  bool may_write[2] = {false, false};
#if defined(__linux__)
  EpollSet* set = nullptr;  // the thread's (relay_epoll_set.h); nullptr until joined
  EpollToken token = 0;
  bool fin_seen[2] = {false, false};  // the socket's last event said its peer had shut down (EPOLLRDHUP)
  // The socket has had urgent data (EPOLLPRI): a read stops short at its mark with bytes still queued, and splice(2)
  // does not move past it at all, so from then on neither a short read nor a pipe is trusted for it.
  bool urgent_seen[2] = {false, false};
  bool duplicate[2] = {false, false};  // sockets[i] duplicates a descriptor Node may still hold
  bool later = false;  // a call on the loop's next turn is waiting
#else
  uv_poll_t polls[2];  // level-triggered (AFD on Windows)
  int watched[2] = {0, 0};  // the events each poll waits for
  bool polling[2] = {false, false};  // polls[i] is an initialized handle
#endif
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
  const RelayOutcome outcome{relay->directions[0].bytes, relay->directions[1].bytes, relay->code};
  RelayDone done = relay->done;
  void* data = relay->data;
  delete relay;
  done(data, outcome);
}

#if defined(__linux__)
void ClosePipe(Direction& direction) {
  for (int& fd : direction.pipe) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

// Leaves the epoll set and closes the sockets and pipes at once (no libuv
// handle has them); the timer's close reports the end.
void Close(Relay* relay, const char* code) {
  if (relay->closing) return;
  relay->closing = true;
  relay->code = code;
  if (relay->set != nullptr) EpollLeave(relay->set, relay->token);
  for (int side = 0; side < 2; ++side) {
    const int fd = relay->sockets[side];
    if (fd < 0) continue;
    if (relay->duplicate[side] && relay->set != nullptr) EpollUnwatch(relay->set, fd);
    CloseRelaySocket(fd);
    relay->sockets[side] = kNoRelaySocket;
  }
  for (Direction& direction : relay->directions) ClosePipe(direction);
  relay->open_handles = 1;
  uv_close(reinterpret_cast<uv_handle_t*>(&relay->timer), OnClosed);
}
#else
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
#endif

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

// The budget of one wake-up ran out with bytes maybe left: Linux's
// edge-triggered set will not say so again, so the relay asks for a call on
// the loop's next turn; Windows' level-triggered polls wake it anyway.
void MoreLater(Relay* relay) {
#if defined(__linux__)
  if (relay->later) return;
  relay->later = true;
  EpollCallLater(relay->set, relay->token);
#else
  (void)relay;
#endif
}

bool Pump(Relay* relay, int index);

#if defined(__linux__)
// Moves what it can in one direction through its pipe (PumpThroughPipe's
// rounds are Pump's, with splice in place of read and send). False once the
// relay has failed.
bool PumpThroughPipe(Relay* relay, int index) {
  Direction& direction = relay->directions[index];
  const int from = relay->sockets[index];
  const int to = relay->sockets[1 - index];
  for (int round = 0; round < kRoundsPerWakeUp; ++round) {
    if (direction.in_pipe > 0) {
      if (!relay->may_write[1 - index]) return true;
      const ssize_t sent = splice(direction.pipe[0], nullptr, to, nullptr, direction.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (sent < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          Close(relay, RelayErrorCode(errno));
          return false;
        }
        relay->may_write[1 - index] = false;
        return true;
      }
      direction.in_pipe -= static_cast<size_t>(sent);
      direction.bytes += static_cast<uint64_t>(sent);
      Touch(relay);
      // Not taken as "the socket is full" (only EAGAIN is): the next round asks.
      if (direction.in_pipe > 0) continue;
    }
    if (direction.ended) return PassOnEnd(relay, direction, to);
    if (relay->urgent_seen[index]) return Pump(relay, index);  // the pipe is empty: copying from now on (Spliced)
    if (!relay->may_read[index]) return true;
    // The pipe is empty here: EAGAIN means the source has nothing now.
    const ssize_t got = splice(from, nullptr, direction.pipe[1], nullptr, kPipeBytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (got > 0) {
      direction.in_pipe = static_cast<size_t>(got);
      Touch(relay);
      continue;
    }
    if (got == 0) {
      // splice(2) also says 0 at an urgent mark once the peer has shut down, with bytes behind the mark: a copying
      // read, which steps past the mark, decides (urgent_seen takes the direction off its empty pipe).
      relay->urgent_seen[index] = true;
      return Pump(relay, index);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      Close(relay, RelayErrorCode(errno));
      return false;
    }
    relay->may_read[index] = false;
    return true;
  }
  MoreLater(relay);
  return true;
}

// Whether the direction moves through a pipe from now on: once it has moved
// splice_after bytes and its buffer is empty (what was read into it goes
// first). A pipe the system refuses (out of descriptors) leaves it copying.
bool Spliced(Relay* relay, int index) {
  Direction& direction = relay->directions[index];
  if (relay->urgent_seen[index]) {
    // Reads step past an urgent mark; splice(2) answers EAGAIN at it for good. What the pipe holds goes first; an
    // empty pipe is let go, and the direction copies from then on.
    if (direction.pipe[0] < 0) return false;
    if (direction.in_pipe > 0) return true;
    ClosePipe(direction);
    return false;
  }
  if (direction.pipe[0] >= 0) return true;
  const uint64_t after = relay->settings.splice_after;
  if (after == 0 || direction.bytes < after || direction.start < direction.end || direction.ended) return false;
  // On failure pipe2 leaves the descriptors as they were (-1): copying goes on.
  return pipe2(direction.pipe, O_NONBLOCK | O_CLOEXEC) == 0;
}
#else
bool Spliced(Relay*, int) { return false; }
bool PumpThroughPipe(Relay*, int) { return false; }
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

// Whether a read that took `got` of `asked` bytes took all the source had:
// then the next read would only say EAGAIN, a system call per wake-up, and
// what comes later wakes the relay. Not on Linux once the socket's event said
// its peer shut down: that FIN came before this read, and no later event
// would tell of it.
bool Drained(const Relay* relay, int side, long got, size_t asked) {
  if (static_cast<size_t>(got) >= asked) return false;
#if defined(__linux__)
  return !relay->fin_seen[side] && !relay->urgent_seen[side];
#else
  (void)relay;
  (void)side;
  return true;
#endif
}

// Moves what it can in one direction: writes what was kept, then reads and
// sends, keeping what the destination does not take; reads nothing while
// anything is kept (backpressure). False once the relay has failed.
bool Pump(Relay* relay, int index) {
  Direction& direction = relay->directions[index];
  const int to_side = 1 - index;
  const RelaySocket from = relay->sockets[index];
  const RelaySocket to = relay->sockets[to_side];
  if (Spliced(relay, index)) return PumpThroughPipe(relay, index);
  int error = 0;
  for (int round = 0; round < kRoundsPerWakeUp; ++round) {
    if (direction.start < direction.end) {
      if (!relay->may_write[to_side]) return true;
      const long sent = SendSome(to, direction.buffer.data() + direction.start, direction.end - direction.start, &error);
      if (sent < 0) {
        if (Interrupted(error)) continue;
        if (!WouldBlock(error)) {
          Close(relay, RelayErrorCode(error));
          return false;
        }
        relay->may_write[to_side] = false;
        return true;
      }
      direction.start += static_cast<size_t>(sent);
      direction.bytes += static_cast<uint64_t>(sent);
      Touch(relay);
      if (direction.start < direction.end) {
        relay->may_write[to_side] = false;  // a stream socket takes less only when it is full
        return true;
      }
      Release(direction);
    }
    if (direction.ended) return PassOnEnd(relay, direction, to);
    if (!relay->may_read[index]) return true;
    uint8_t* scratch = Scratch(relay->settings.buffer_bytes);
    const long got = ReceiveSome(from, scratch, relay->settings.buffer_bytes, &error);
    if (got > 0) {
      Touch(relay);
      long sent = relay->may_write[to_side] ? SendSome(to, scratch, static_cast<size_t>(got), &error) : 0;
      if (sent < 0) {
        if (!WouldBlock(error) && !Interrupted(error)) {
          Close(relay, RelayErrorCode(error));
          return false;
        }
        sent = 0;
      }
      direction.bytes += static_cast<uint64_t>(sent);
      if (Drained(relay, index, got, relay->settings.buffer_bytes)) relay->may_read[index] = false;
      if (sent < got) {
        relay->may_write[to_side] = false;
        Keep(direction, scratch + sent, static_cast<size_t>(got - sent));
        return true;  // the socket is full: its event says when it takes more
      }
      if (!relay->may_read[index]) return true;
      continue;
    }
    if (got == 0) {
      direction.ended = true;
      HalfClosed(relay);
      // Nothing is kept (a read comes only then): the FIN goes on now. Not
      // in a next round: this may be the budget's last, and nothing would wake
      // this direction again (its source has nothing more to say, its
      // destination speaks only while bytes wait for it).
      return PassOnEnd(relay, direction, to);
    }
    if (Interrupted(error)) continue;
    if (!WouldBlock(error)) {
      Close(relay, RelayErrorCode(error));
      return false;
    }
    relay->may_read[index] = false;
    return true;
  }
  MoreLater(relay);
  return true;
}

// Moves what both directions can, then ends the relay once both have ended,
// or (Windows) sets what each socket's poll waits for.
void Step(Relay* relay);

// A socket reported an error. What it received before (an answer, then a
// reset) is still there to read, and a stream would have read it: pass on what
// the other side takes now (the read that meets the error ends the relay with
// its code), then end with the socket's own error (`fallback`, a libuv code,
// when it has none to give).
void Failed(Relay* relay, int side, int fallback) {
  relay->may_read[side] = true;
  if (!Pump(relay, side)) return;
  int error = 0;
  if (PendingError(relay->sockets[side], &error) && error != 0) {
    Close(relay, RelayErrorCode(error));
  } else {
    Close(relay, uv_err_name(fallback));
  }
}

#if defined(__linux__)
void Update(Relay* relay) {
  if (relay->closing) return;
  if (relay->directions[0].shut && relay->directions[1].shut) Close(relay, nullptr);
}
#else
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

void OnPoll(uv_poll_t* handle, int status, int events) {
  Relay* relay = static_cast<Relay*>(handle->data);
  if (relay->closing) return;
  const int side = handle == &relay->polls[0] ? 0 : 1;
  if (status < 0) return Failed(relay, side, status);  // libuv says EBADF for any POLLERR
  if ((events & UV_WRITABLE) != 0) relay->may_write[side] = true;
  if ((events & UV_READABLE) != 0) relay->may_read[side] = true;
  Step(relay);
}
#endif

void Step(Relay* relay) {
  if (Pump(relay, 0) && Pump(relay, 1)) Update(relay);
}

// Starts the idle timer and moves what both sockets hold already.
void Begin(Relay* relay) {
  Touch(relay);
  if (CurrentLimit(relay) > 0) uv_timer_start(&relay->timer, OnTimer, CurrentLimit(relay), 0);
  Step(relay);
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

// B's connect ended (its event said writable or failed): relay, or end with
// the connect's error. A failed connect leaves an error on the socket, which
// makes it EPOLLERR: only then is the socket asked why (a system call a
// connection saves otherwise).
void Connected(Relay* relay, bool failed) {
  if (failed) {
    int error = 0;
    if (!PendingError(relay->sockets[1], &error)) error = errno;
    Close(relay, error != 0 ? RelayErrorCode(error) : uv_err_name(UV_EBADF));
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

// An event while B connects (ConnectAndRelay). A's reset ends the relay now,
// as the streams relay (reading it) would see, not at the connect's time; its
// bytes and its FIN wait (the flags keep them) until B is connected.
void OnConnectingEvent(Relay* relay, int side, uint32_t events) {
  const bool failed = (events & EPOLLERR) != 0;
  if (side == 1) {
    if (failed || (events & (EPOLLOUT | EPOLLHUP)) != 0) Connected(relay, failed);
    return;
  }
  if (!failed) return;
  int error = 0;
  const bool known = PendingError(relay->sockets[0], &error) && error != 0;
  Close(relay, known ? RelayErrorCode(error) : uv_err_name(UV_EBADF));
}

// An event of one of the relay's sockets (side -1: the call MoreLater asked for).
void OnSocketEvent(void* owner, int side, uint32_t events) {
  Relay* relay = static_cast<Relay*>(owner);
  if (relay->closing) return;
  if (side < 0) {
    relay->later = false;
    if (!relay->connecting) Step(relay);
    return;
  }
  // A hang-up or an error is readable and writable too: the next read or
  // write says what it is, as a level-triggered poll would have.
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) relay->may_read[side] = true;
  if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0) relay->may_write[side] = true;
  if ((events & (EPOLLRDHUP | EPOLLHUP)) != 0) relay->fin_seen[side] = true;
  if ((events & EPOLLPRI) != 0) relay->urgent_seen[side] = relay->may_read[side] = true;
  if (relay->connecting) return OnConnectingEvent(relay, side, events);
  if ((events & EPOLLERR) != 0) return Failed(relay, side, UV_EBADF);
  Step(relay);
}
#endif  // defined(__linux__)

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

#if defined(__linux__)
// Adds sockets[side] to the thread's epoll set (joining it first); false,
// with the relay ending on the error, when it cannot. Its flags stay down:
// the set reports at once what the socket holds already.
bool Watch(Relay* relay, int side) {
  if (relay->set == nullptr) {
    int error = 0;
    EpollSet* set = ThreadEpollSet(relay->loop, OnSocketEvent, &error);
    if (set == nullptr) {
      Close(relay, uv_err_name(error));
      return false;
    }
    relay->set = set;
    relay->token = EpollJoin(set, relay);
  }
  const int error = EpollWatch(relay->set, relay->token, side, relay->sockets[side]);
  if (error != 0) {
    Close(relay, RelayErrorCode(error));
    return false;
  }
  return true;
}
#else
// Makes the poll of sockets[side]; false, with the relay ending on libuv's
// error, when it cannot. Its flags go up: the first pump tries at once, as a
// level-triggered poll gives no first event on its own.
bool Watch(Relay* relay, int side) {
  const int result = uv_poll_init_socket(relay->loop, &relay->polls[side], relay->sockets[side]);
  if (result != 0) {
    Close(relay, uv_err_name(result));
    return false;
  }
  relay->polls[side].data = relay;
  relay->polling[side] = true;
  relay->may_read[side] = relay->may_write[side] = true;
  return true;
}
#endif

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
#if defined(__linux__)
  relay->duplicate[0] = relay->duplicate[1] = true;  // relayStart's duplicates of Node's own
#endif
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
  relay->duplicate[0] = !a_ready;
  if (target.refusal != nullptr) {
    Close(relay, target.refusal);
    return 0;
  }
  if (!Watch(relay, 0)) return 0;
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
  // B's event says when its connect ends; A's, while it does, only a reset
  // (OnConnectingEvent).
  if (!Watch(relay, 1)) return 0;
  if (target.connect_ms > 0) uv_timer_start(&relay->timer, OnTimer, target.connect_ms, 0);
  return 0;
}
#endif  // defined(__linux__)

bool DestroyRelay(Relay* relay, const char* code) {
  if (relay->closing) return false;
  Close(relay, code);
  return true;
}

void CloseThreadRelays() {
#if defined(__linux__)
  CloseThreadEpollSet();
#endif
}

}  // namespace wfp
