// The few socket calls the native relay makes, one implementation per system
// (relay_socket_posix.cc, relay_socket_win.cc): the engine's logic is the
// same on both, only the calls' spelling and their error codes differ. Each
// call answers an OS error (errno, or a WSA code on Windows) where it can fail.
#ifndef WFP_REDIRECT_RELAY_SOCKET_H_
#define WFP_REDIRECT_RELAY_SOCKET_H_

#include <uv.h>

#include <cstddef>
#include <cstdint>

namespace wfp {

// A descriptor on POSIX, a SOCKET on Windows: what uv_poll_init_socket takes.
using RelaySocket = uv_os_sock_t;

// No socket (-1, or INVALID_SOCKET).
extern const RelaySocket kNoRelaySocket;

// Reads or writes at most `length` bytes without blocking: how many (0 from
// ReceiveSome: the peer's FIN), or -1 with the OS error in *error.
long ReceiveSome(RelaySocket socket, uint8_t* into, size_t length, int* error);
long SendSome(RelaySocket socket, const uint8_t* from, size_t length, int* error);

// What a failed call's error means for the relay.
bool WouldBlock(int error);    // nothing to read, or no room to write, now
bool Interrupted(int error);   // try again at once
bool NotConnected(int error);  // the socket is gone already (its own read says how)

// Ends the socket's sending half (a FIN): 0 or the OS error.
int ShutdownWrite(RelaySocket socket);

void CloseRelaySocket(RelaySocket socket);

// SO_ERROR: the socket's pending error (0: none); false when it cannot be asked.
bool PendingError(RelaySocket socket, int* error);

// Whether `socket` is a stream socket, made sure to be non-blocking (the
// engine's reads and writes must not block; libuv makes its sockets so on
// both systems, and this does not rely on it).
bool PrepareStreamSocket(RelaySocket socket);

// TCP_NODELAY: the relay passes on each chunk as it comes, as HAProxy does
// (the client's own stack did whatever coalescing it wanted); Nagle here would
// hold back a second small write until the first is acknowledged. Best effort.
void NoDelay(RelaySocket socket);

// A second handle of the same socket, for the relay to own and close while
// Node keeps and later closes its own (neither close ends the connection
// while the other is open): 0, or the OS error.
int DuplicateSocket(RelaySocket socket, RelaySocket* out);

// The code the JavaScript relay logs for an OS error (ECONNRESET, EPIPE, ...).
const char* RelayErrorCode(int error);

}  // namespace wfp

#endif  // WFP_REDIRECT_RELAY_SOCKET_H_
