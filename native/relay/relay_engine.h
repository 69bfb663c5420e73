// The native relay: once a connection's destination is decided and both of
// its sockets are connected, bytes move between them here, on the thread's
// own libuv loop, without crossing into JavaScript: non-blocking reads into a
// buffer the thread's relays share, sent at once; on Linux, past
// RelaySettings.splice_after, splice(2) through a pipe. Linux watches the
// sockets in an edge-triggered epoll set of the relay's own
// (relay_epoll_set.h); Windows with a level-triggered uv_poll per socket
// (there uv_poll asks AFD, the driver under Winsock, and the reads and writes
// are plain non-blocking recv and send).
//
// Per direction (A->B is "up", B->A is "down"): what the destination does not
// take is kept (at most one read's worth), and the source is read only while
// nothing is kept, so a destination that does not take bytes stops the reads
// from its peer (backpressure); an idle connection holds no buffer. On the
// source's end (read 0) the destination is shut for writing
// (SHUT_WR), so each half closes on its own. The relay ends when both
// directions have ended, on the first error, when nothing moved for the idle
// time (or, once either side ended, the half-close time), or on Destroy.
#ifndef WFP_REDIRECT_RELAY_ENGINE_H_
#define WFP_REDIRECT_RELAY_ENGINE_H_

#include <uv.h>
#if defined(__linux__)
#include <sys/socket.h>
#endif

#include <cstddef>
#include <cstdint>

#include "relay_socket.h"

namespace wfp {

struct RelayOutcome {
  uint64_t bytes_up;    // written to B
  uint64_t bytes_down;  // written to A
  // nullptr when both directions ended or the relay was destroyed; else the
  // code the JS relay logs for the same failure (ECONNRESET, EPIPE,
  // ERR_IDLE_TIMEOUT, ERR_HALF_CLOSE_TIMEOUT, ...). Static storage.
  const char* code;
};

struct RelaySettings {
  uint64_t idle_ms;        // 0: none
  uint64_t half_close_ms;  // 0: none (the idle time goes on applying)
  size_t buffer_bytes;     // what one read takes at most (a buffer the thread's relays share)
  // Linux: a direction that has moved this many bytes goes on through a pipe
  // with splice(2), without copying its bytes into the process; 0: never.
  uint64_t splice_after;
};

class Relay;

// Called once per relay, from the loop, after both sockets are closed. The
// Relay is gone by then.
using RelayDone = void (*)(void* data, const RelayOutcome& outcome);

// Starts relaying between the connected stream sockets a and b, which it owns
// from now on (closed when the relay ends, also when starting fails).
// `up`/`down`: bytes already read from a (for b) and from b (for a), sent
// first. Returns 0 (a poll libuv refuses ends the relay through `done`, with
// libuv's code), or UV_ENOTSOCK when a or b is not a stream socket (both are
// closed, done is never called).
int StartRelay(uv_loop_t* loop, RelaySocket a, RelaySocket b, const RelaySettings& settings,
               const uint8_t* up, size_t up_length, const uint8_t* down,
               size_t down_length, RelayDone done, void* data, Relay** out);

#if defined(__linux__)
// Where ConnectAndRelay connects, and how. Linux only: elsewhere JavaScript
// connects, and hands the pair to StartRelay.
struct ConnectTarget {
  sockaddr_storage address;
  socklen_t length;
  int64_t mark;         // SO_MARK before connecting; -1: none
  uint64_t connect_ms;  // the connect may take this long (ETIMEDOUT); 0: no limit
  // When set, nothing is connected: the relay ends at once with this code (a
  // refusal the caller decided, such as ERR_PROXY_LOOP). Static storage.
  const char* refusal;
};

// Opens a TCP socket, connects it to `target` and, once it is connected,
// relays between `a` (which it owns from now on) and it as StartRelay does.
// Every failure after that (the socket, the mark, the connect, its time) ends
// the relay with its code through `done`, as a relay's own failure would.
// `local`: the new socket's local endpoint once connect() has given it one
// (length 0 when it has none). Returns 0, or a negative libuv error when `a`
// is not a stream socket (then `a` is closed and done is never called).
// `a_ready`: `a` is known to be a non-blocking stream socket (the addon's own
// accept4 made it so): not asked again (two system calls per connection), and
// no other descriptor has its socket (so it leaves the epoll set with its close,
// not with a system call of its own).
int ConnectAndRelay(uv_loop_t* loop, int a, bool a_ready, const ConnectTarget& target,
                    const RelaySettings& settings, RelayDone done, void* data,
                    Relay** out, sockaddr_storage* local, socklen_t* local_length);
#endif  // defined(__linux__)

// Ends the relay, without an error or with `code` (a literal: it outlives the
// relay): both sockets are closed, `done` comes later from the loop. False,
// changing nothing, for a relay that has ended already (by itself or by this)
// and whose `done` is still to come; not to be called after `done`.
bool DestroyRelay(Relay* relay, const char* code = nullptr);

// The thread's environment is going, its relays destroyed: closes what they
// shared on its loop (Linux: the epoll set), as a loop that closes must have
// no handle left open.
void CloseThreadRelays();

}  // namespace wfp

#endif  // WFP_REDIRECT_RELAY_ENGINE_H_
