// See relay_epoll_set.h. Linux only.
#include "relay_epoll_set.h"

#if defined(__linux__)

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vector>

namespace wfp {

// What one wake-up takes from the set; more events wait for the next (the
// loop's poll of the set's descriptor is level-triggered).
constexpr int kEventsPerWakeUp = 64;

struct EpollSet {
  uv_loop_t* loop = nullptr;
  int fd = -1;
  uv_poll_t poll;  // the loop's watch on `fd`
  uv_idle_t idle;  // runs while calls are waiting for the next turn
  EpollReady ready = nullptr;
  std::vector<void*> owners;  // by slot; nullptr: free
  std::vector<uint32_t> generations;
  std::vector<uint32_t> free_slots;
  std::vector<EpollToken> later;
  size_t members = 0;
  int open_handles = 0;
};

namespace {

thread_local EpollSet* this_thread_set = nullptr;

// A token is (generation << 32) | (slot << 1); an event's data adds the side
// in the lowest bit.
EpollToken TokenOf(uint32_t slot, uint32_t generation) {
  return (static_cast<uint64_t>(generation) << 32) | (static_cast<uint64_t>(slot) << 1);
}
uint32_t SlotOf(EpollToken token) { return static_cast<uint32_t>((token & 0xffffffffu) >> 1); }
uint32_t GenerationOf(EpollToken token) { return static_cast<uint32_t>(token >> 32); }

// The owner behind a token, or nullptr once it has left.
void* OwnerOf(const EpollSet* set, EpollToken token) {
  const uint32_t slot = SlotOf(token);
  if (slot >= set->owners.size() || set->generations[slot] != GenerationOf(token)) return nullptr;
  return set->owners[slot];
}

void OnSetReady(uv_poll_t* handle, int, int) {
  EpollSet* set = static_cast<EpollSet*>(handle->data);
  epoll_event events[kEventsPerWakeUp];
  int count;
  do {
    count = epoll_wait(set->fd, events, kEventsPerWakeUp, 0);
  } while (count < 0 && errno == EINTR);
  // An owner called here may leave, and its slot be taken by a new owner,
  // before this batch is through: each event is checked against its token.
  for (int i = 0; i < count; ++i) {
    const uint64_t data = events[i].data.u64;
    void* owner = OwnerOf(set, data & ~uint64_t{1});
    if (owner != nullptr) set->ready(owner, static_cast<int>(data & 1), events[i].events);
  }
}

void OnIdle(uv_idle_t* handle) {
  EpollSet* set = static_cast<EpollSet*>(handle->data);
  std::vector<EpollToken> calls;
  calls.swap(set->later);  // what these calls ask for waits for the turn after
  for (const EpollToken token : calls) {
    void* owner = OwnerOf(set, token);
    if (owner != nullptr) set->ready(owner, -1, 0);
  }
  if (set->later.empty()) uv_idle_stop(&set->idle);
}

void OnSetHandleClosed(uv_handle_t* handle) {
  EpollSet* set = static_cast<EpollSet*>(handle->data);
  if (--set->open_handles > 0) return;
  close(set->fd);
  delete set;
}

}  // namespace

EpollSet* ThreadEpollSet(uv_loop_t* loop, EpollReady ready, int* error) {
  EpollSet* set = this_thread_set;
  if (set != nullptr && set->loop == loop) return set;
  if (set != nullptr) {  // Node runs one loop per thread; a second is not this engine's case
    *error = UV_EINVAL;
    return nullptr;
  }
  set = new EpollSet();
  set->loop = loop;
  set->ready = ready;
  set->fd = epoll_create1(EPOLL_CLOEXEC);
  if (set->fd < 0) {
    *error = -errno;
    delete set;
    return nullptr;
  }
  const int result = uv_poll_init(loop, &set->poll, set->fd);
  if (result != 0) {
    *error = result;
    close(set->fd);
    delete set;
    return nullptr;
  }
  set->poll.data = set;
  uv_idle_init(loop, &set->idle);  // cannot fail
  set->idle.data = set;
  uv_poll_start(&set->poll, UV_READABLE, OnSetReady);  // an initialized poll of a valid descriptor: cannot fail
  uv_unref(reinterpret_cast<uv_handle_t*>(&set->poll));  // no owners yet
  this_thread_set = set;
  return set;
}

EpollToken EpollJoin(EpollSet* set, void* owner) {
  uint32_t slot;
  if (!set->free_slots.empty()) {
    slot = set->free_slots.back();
    set->free_slots.pop_back();
  } else {
    slot = static_cast<uint32_t>(set->owners.size());
    set->owners.push_back(nullptr);
    set->generations.push_back(0);
  }
  set->owners[slot] = owner;
  if (set->members++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(&set->poll));
  return TokenOf(slot, set->generations[slot]);
}

void EpollLeave(EpollSet* set, EpollToken token) {
  const uint32_t slot = SlotOf(token);
  if (OwnerOf(set, token) == nullptr) return;
  set->owners[slot] = nullptr;
  ++set->generations[slot];
  set->free_slots.push_back(slot);
  if (--set->members == 0) uv_unref(reinterpret_cast<uv_handle_t*>(&set->poll));
}

int EpollWatch(EpollSet* set, EpollToken token, int side, int fd) {
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
  event.data.u64 = token | static_cast<uint64_t>(side & 1);
  return epoll_ctl(set->fd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : errno;
}

void EpollUnwatch(EpollSet* set, int fd) {
  epoll_event unused{};  // kernels before 2.6.9 wanted one
  epoll_ctl(set->fd, EPOLL_CTL_DEL, fd, &unused);
}

void EpollCallLater(EpollSet* set, EpollToken token) {
  if (set->later.empty()) uv_idle_start(&set->idle, OnIdle);
  set->later.push_back(token);
}

void CloseThreadEpollSet() {
  EpollSet* set = this_thread_set;
  if (set == nullptr) return;
  this_thread_set = nullptr;
  set->open_handles = 2;
  uv_close(reinterpret_cast<uv_handle_t*>(&set->poll), OnSetHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&set->idle), OnSetHandleClosed);
}

}  // namespace wfp

#endif  // defined(__linux__)
