// See relay_engine.h. Linux only (binding.gyp, CMakeLists.txt list it there).
#include "relay_engine.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace wfp {
namespace {

// At most this many reads per direction per wake-up, so that one fast
// connection does not starve the rest of the loop (the polls are
// level-triggered: what is left wakes the loop again).
constexpr int kRoundsPerWakeUp = 16;

struct Direction {
  std::vector<uint8_t> buffer;  // reused for the connection's life
  size_t start = 0;             // bytes [start, end) wait to be written
  size_t end = 0;
  bool ended = false;  // the source sent its FIN (read gave 0)
  bool shut = false;   // the destination was shut for writing
  uint64_t bytes = 0;  // written to the destination
};

}  // namespace

class Relay {
 public:
  uv_loop_t* loop = nullptr;
  int fds[2] = {-1, -1};  // a, b
  uv_poll_t polls[2];
  uv_timer_t timer;
  Direction directions[2];  // [0]: a -> b (up); [1]: b -> a (down)
  RelaySettings settings{};
  RelayDone done = nullptr;
  void* data = nullptr;
  uint64_t last_activity = 0;
  bool half_closed = false;
  int watched[2] = {0, 0};  // the events each poll waits for
  bool closing = false;
  int open_handles = 0;
  const char* code = nullptr;
};

namespace {

const char* ErrnoCode(int error) { return uv_err_name(-error); }

void OnClosed(uv_handle_t* handle) {
  Relay* relay = static_cast<Relay*>(handle->data);
  if (--relay->open_handles > 0) return;
  close(relay->fds[0]);
  close(relay->fds[1]);
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
  relay->open_handles = 3;
  uv_close(reinterpret_cast<uv_handle_t*>(&relay->polls[0]), OnClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&relay->polls[1]), OnClosed);
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
  const uint64_t limit = CurrentLimit(relay);
  if (limit == 0 || relay->closing) return;
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
bool PassOnEnd(Relay* relay, Direction& direction, int to) {
  if (direction.shut) return true;
  direction.shut = true;
  // ENOTCONN: the destination is gone already; its own read reports how.
  if (shutdown(to, SHUT_WR) != 0 && errno != ENOTCONN) {
    Close(relay, ErrnoCode(errno));
    return false;
  }
  return true;
}

// Moves what it can in one direction: writes what is buffered, reads more
// once the buffer is empty. False once the relay has failed.
bool Pump(Relay* relay, int index) {
  Direction& direction = relay->directions[index];
  const int from = relay->fds[index];
  const int to = relay->fds[1 - index];
  for (int round = 0; round < kRoundsPerWakeUp; ++round) {
    if (direction.start < direction.end) {
      const ssize_t sent = send(to, direction.buffer.data() + direction.start,
                                direction.end - direction.start, MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        if (errno == EINTR) continue;
        Close(relay, ErrnoCode(errno));
        return false;
      }
      direction.start += static_cast<size_t>(sent);
      direction.bytes += static_cast<uint64_t>(sent);
      Touch(relay);
      if (direction.start < direction.end) return true;  // the socket is full
    }
    direction.start = direction.end = 0;
    if (direction.ended) return PassOnEnd(relay, direction, to);
    const ssize_t got = read(from, direction.buffer.data(), direction.buffer.size());
    if (got > 0) {
      direction.end = static_cast<size_t>(got);
      Touch(relay);
      continue;
    }
    if (got == 0) {
      direction.ended = true;
      HalfClosed(relay);
      // The buffer is empty (a read comes only then): the FIN goes on now. Not
      // in a next round: this may be the budget's last, and nothing would wake
      // this direction again (its source is not polled once it ended, its
      // destination only while bytes wait for it).
      return PassOnEnd(relay, direction, to);
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    if (errno == EINTR) continue;
    Close(relay, ErrnoCode(errno));
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
    if (!outgoing.ended && outgoing.start == outgoing.end) wanted |= UV_READABLE;
    if (incoming.start < incoming.end) wanted |= UV_WRITABLE;
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
  if (status < 0) {
    // libuv answers any POLLERR so, without reading: what the socket received
    // before its error (an answer, then a reset) is still there to read, and a
    // stream would have read it. Pass on what the other side takes now (the
    // read that meets the error ends the relay with its code), then end.
    if (!Pump(relay, side)) return;
    // libuv says EBADF for any POLLERR; the socket knows the real error.
    int error = 0;
    socklen_t length = sizeof(error);
    if (getsockopt(relay->fds[side], SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error != 0) {
      Close(relay, ErrnoCode(error));
    } else {
      Close(relay, uv_err_name(status));
    }
    return;
  }
  if ((events & UV_WRITABLE) != 0 && !Pump(relay, 1 - side)) return;
  if ((events & UV_READABLE) != 0 && !Pump(relay, side)) return;
  Update(relay);
}

bool IsStreamSocket(int fd) {
  int type = 0;
  socklen_t length = sizeof(type);
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 && type == SOCK_STREAM;
}

}  // namespace

int StartRelay(uv_loop_t* loop, int a, int b, const RelaySettings& settings,
               const uint8_t* up, size_t up_length, const uint8_t* down,
               size_t down_length, RelayDone done, void* data, Relay** out) {
  if (!IsStreamSocket(a) || !IsStreamSocket(b) || a == b) {
    close(a);
    close(b);
    return UV_ENOTSOCK;
  }
  Relay* relay = new Relay();
  relay->loop = loop;
  relay->fds[0] = a;
  relay->fds[1] = b;
  relay->settings = settings;
  relay->done = done;
  relay->data = data;
  const uint8_t* pending[2] = {up, down};
  const size_t lengths[2] = {up_length, down_length};
  for (int index = 0; index < 2; ++index) {
    Direction& direction = relay->directions[index];
    direction.buffer.resize(std::max(settings.buffer_bytes, lengths[index]));
    if (lengths[index] > 0) std::memcpy(direction.buffer.data(), pending[index], lengths[index]);
    direction.end = lengths[index];
  }
  int result = uv_poll_init(loop, &relay->polls[0], a);
  if (result == 0) {
    result = uv_poll_init(loop, &relay->polls[1], b);
    if (result != 0) {
      // The first poll is a live handle now: close it the way every relay ends.
      relay->polls[0].data = relay;
      relay->open_handles = 1;
      relay->closing = true;
      relay->code = uv_err_name(result);
      uv_close(reinterpret_cast<uv_handle_t*>(&relay->polls[0]), OnClosed);
      *out = relay;
      return 0;
    }
  }
  if (result != 0) {
    close(a);
    close(b);
    delete relay;
    return result;
  }
  uv_timer_init(loop, &relay->timer);
  relay->polls[0].data = relay->polls[1].data = relay->timer.data = relay;
  *out = relay;
  Touch(relay);
  if (CurrentLimit(relay) > 0) uv_timer_start(&relay->timer, OnTimer, CurrentLimit(relay), 0);
  // Bytes handed over go at once; so does whatever the sockets hold already.
  if (Pump(relay, 0) && Pump(relay, 1)) Update(relay);
  return 0;
}

void DestroyRelay(Relay* relay) { Close(relay, nullptr); }

}  // namespace wfp
