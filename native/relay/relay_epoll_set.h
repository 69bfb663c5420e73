// Linux: the native relay's sockets are watched by an epoll set of the
// relay's own, one per thread, edge-triggered, which the thread's libuv loop
// watches through a single uv_poll on the set's descriptor. A socket is added
// once (EPOLL_CTL_ADD, for reading, writing and the peer's FIN) and leaves the
// set when it is closed. A uv_poll per socket cost an ioctl at its start, an
// EPOLL_CTL_ADD, a MOD each time the relay's interest changed and a DEL at
// close: 11 epoll_ctl and 2 ioctl a connection, where HAProxy makes 3 and 0.
//
// Edge-triggered: an event says a socket may be read or written; its owner
// reads or writes until the socket says EAGAIN, or, when it stops before (its
// budget for one wake-up), asks to be called again on the loop's next turn
// (EpollCallLater), as nothing else would wake it.
#ifndef WFP_REDIRECT_RELAY_EPOLL_SET_H_
#define WFP_REDIRECT_RELAY_EPOLL_SET_H_

#if defined(__linux__)

#include <uv.h>

#include <cstdint>

namespace wfp {

struct EpollSet;

// An owner's place in the set: its slot and the slot's generation, so that an
// event for an owner that has left (a socket whose file outlives the
// descriptor the owner closed, held by a child between fork and exec) finds a
// newer generation and is dropped, never handed to the slot's next owner.
using EpollToken = uint64_t;

// Called for each event of an owner's socket (`side` as given to EpollWatch,
// `events` epoll's bits), and with side -1 and events 0 for EpollCallLater.
using EpollReady = void (*)(void* owner, int side, uint32_t events);

// This thread's set on `loop`, made at first use; nullptr, with *error a
// libuv code, when it cannot be made (out of descriptors, say).
EpollSet* ThreadEpollSet(uv_loop_t* loop, EpollReady ready, int* error);

// The loop stays alive while the set has owners, as it did while each socket
// had a uv_poll of its own.
EpollToken EpollJoin(EpollSet* set, void* owner);
// No event or later call reaches the owner after this.
void EpollLeave(EpollSet* set, EpollToken token);

// Adds `fd` for EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI (urgent data), edge-triggered: 0 or an
// errno. The kernel reports a socket that is readable or writable already at
// once, so an owner learns what a socket holds from events alone.
int EpollWatch(EpollSet* set, EpollToken token, int side, int fd);
// Takes `fd` out before its owner closes it: for a descriptor whose socket
// lives on elsewhere (a duplicate of Node's own), which the kernel would
// otherwise keep in the set after the owner's close.
void EpollUnwatch(EpollSet* set, int fd);

// The owner is called once more (side -1) on the loop's next turn, after the
// other connections' events.
void EpollCallLater(EpollSet* set, EpollToken token);

// The thread's environment is going: closes the set's handles and descriptor
// (its owners have left by then). A later ThreadEpollSet makes a new one.
void CloseThreadEpollSet();

}  // namespace wfp

#endif  // defined(__linux__)

#endif  // WFP_REDIRECT_RELAY_EPOLL_SET_H_
