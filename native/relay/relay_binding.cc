// binding.relay*: the JS face of the native relay (relay_engine.h). Linux:
// all of it; Windows: relayStart and relayDestroy (JavaScript accepts,
// decides and connects; the relay moves the bytes). Elsewhere InitRelay adds
// nothing and lib/proxy/native-relay.ts relays on streams.
//
//   relayStart(socketA, socketB, idleMs, halfCloseMs, up?, down?, onDone): id
//       socketA/socketB are Node's own descriptors (Windows: SOCKETs) of two
//       connected TCP sockets; the relay works on duplicates of them
//       (F_DUPFD_CLOEXEC; WSADuplicateSocketW), so that Node may keep and
//       later close its own without a FIN or RST reaching a peer while the
//       relay still has the socket. `up` goes to B first, `down` to A.
//       onDone(bytesUp, bytesDown, code?) once, from the loop, after the
//       duplicates are closed.
//   relayGroup(listenHost, listenPort, targetHost | null, targetPort, mark,
//              connectMs, idleMs, halfCloseMs, onDone): group
//       What relayConnect does for the connections of one listener: connect
//       each to targetHost:targetPort (an IP address), or with null to the
//       accepted socket's original destination (netfilter), SO_MARK `mark`
//       first unless -1. onDone(logId, bytesUp, bytesDown, durationMs, code?,
//       clientAddress?, clientPort?, destinationAddress?, destinationPort?)
//       once per connection, from the loop.
//   relayConnect(fd, group, logId): id
//       Accept to relay with no JavaScript in between: decides the accepted
//       socket `fd` as the JS proxy would with nothing per connection to ask
//       (its destination; ERR_NOT_REDIRECTED; ERR_PROXY_LOOP for one of the
//       group's own outbound connections come back, or a destination that is
//       the listener itself), connects a new socket there and relays between
//       it and a duplicate of `fd` (the caller closes its own at once). Every
//       refusal and failure (ECONNREFUSED, ETIMEDOUT, EMFILE, ...) comes as
//       onDone's code.
//   relayGroupListen(group, fd, maxConnections, onRefused): true
//       The group accepts from a duplicate of the listening socket `fd`
//       itself from now on (the caller then closes its own handle of it), and
//       relays each connection as relayConnect would, with logId 0: no
//       JavaScript runs for a connection before its onDone. One past
//       maxConnections open is closed at once, as Node's server does.
//       onRefused(code, count), from the loop: `count` connections closed so
//       (ERR_MAX_CONNECTIONS, once per wake-up; EMFILE: out of descriptors,
//       what waited was accepted and closed, as Node's server does), or an
//       accept's failure it cannot get past (accepting rests a while then,
//       the connection waiting in the kernel's queue).
//   relayGroupSize(group): how many of its relays are open (0: gone).
//   relayGroupDestroy(group, cut): ends the group's open relays (each still
//       reports; without an error, or with cut ERR_PROXY_SHUTDOWN); how many
//       it ended (not those that had ended by themselves). relayGroupClose(group): no more
//       relayConnect, the listener (if any) closed; the group goes once its
//       relays have. (relayGroup to relayGroupClose: Linux only.)
//   relayDestroy(id): ends a relay without an error (onDone still comes);
//       false when it has ended already.
#include "relay_binding.h"

#if defined(__linux__) || defined(_WIN32)

#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif
#include <uv.h>

#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../js_args.h"
#include "../js_errors.h"
#include "../original_destination.h"
#include "../os_socket.h"
#include "../sockaddr_endpoint.h"
#include "relay_engine.h"

namespace wfp {
namespace {

// Per direction; what one read takes at most. 64 KiB is what Node's own
// stream reads use, and keeps the number of system calls per MB low. A test
// build (test/native wfp_relay_small) makes it 1 KiB, so that a test can put
// a given number of reads in the kernel's queue before the relay starts.
#ifndef WFP_REDIRECT_RELAY_BUFFER_BYTES
#define WFP_REDIRECT_RELAY_BUFFER_BYTES (64 * 1024)
#endif
constexpr size_t kBufferBytes = WFP_REDIRECT_RELAY_BUFFER_BYTES;

// A direction that has moved this much goes on through a pipe (splice(2)):
// bulk transfers stop copying their bytes through the process, and the many
// short connections that never get there do not pay for two more descriptors
// and a pipe each. Test builds lower it so that their short transfers splice.
#ifndef WFP_REDIRECT_RELAY_SPLICE_AFTER
#define WFP_REDIRECT_RELAY_SPLICE_AFTER (256 * 1024)
#endif
constexpr uint64_t kSpliceAfter = WFP_REDIRECT_RELAY_SPLICE_AFTER;

// Relay and group ids: 64-bit counters that never wrap in practice (ids stay
// below 2^53, exact as JS numbers), so an id never names two relays.
using RelayId = uint64_t;

struct Listener;

// One listener's relayConnect settings, its callback and its open outbound connections.
struct Group {
  RelayId id = 0;
  bool original = false;  // each connection goes to its netfilter original destination, not `target`
  Endpoint target{};
  Endpoint listener{};
  int64_t mark = -1;
  uint64_t connect_ms = 0;
  RelaySettings settings{};
  Napi::FunctionReference on_done;
  std::unique_ptr<Napi::AsyncContext> async;
  // The open outbound connections as EndpointPair(local, destination): a loop is one of them come back.
  std::unordered_multiset<std::string> own;
  std::unordered_set<RelayId> relays;  // the ids of its open relays
  bool closed = false;
  // Its callback is running (OnRelayDone): the group, whose callback and
  // async context that is, must outlive it even if JS closes the group meanwhile.
  int calling = 0;
  // relayGroupListen: the listening socket the addon accepts from itself, the
  // most connections it relays at once, and what it says of those it refused.
  Listener* accepting = nullptr;
  size_t max_connections = 0;
  Napi::FunctionReference on_refused;
};

// A duplicate of Node's listening socket that the addon accepts from (Node's
// own handle is closed then), so that a connection costs no JavaScript before
// its end. Outlives its group until libuv has closed its handles.
struct Listener {
  Group* group = nullptr;  // nullptr once the group let go of it
  napi_env env = nullptr;
  uv_loop_t* loop = nullptr;
  int fd = -1;
  uv_poll_t poll;
  uv_timer_t pause;  // accepting again a while after an accept failed for a reason it cannot get past
  // A descriptor held in reserve: out of descriptors, it is given up for a
  // moment to accept and close what waits, as libuv's own accept does, so
  // that a client is refused rather than left waiting. -1 when none.
  int reserve = -1;
  int open_handles = 0;
};

struct Pending {
  napi_env env;
  RelayId id;
  Relay* relay;
  // relayStart: its own callback. relayConnect: the group's, and what the log needs.
  Napi::FunctionReference on_done;
  std::unique_ptr<Napi::AsyncContext> async;
  Group* group = nullptr;
  double log_id = 0;
  uv_loop_t* loop = nullptr;
  uint64_t started = 0;  // uv_now
  std::string client_address;
  int client_port = -1;  // -1: the client had gone before the relay saw it
  bool has_destination = false;
  Endpoint destination{};
  std::string own_key;
};

// The relays of this thread (each thread has its own loop and Node env).
struct Registry {
  std::unordered_map<RelayId, Pending*> relays;
  std::unordered_map<RelayId, Group*> groups;
  RelayId next_id = 0;
  RelayId next_group = 0;
  bool env_gone = false;
};
thread_local Registry* registry = nullptr;

void ReleaseGroup(Group* group);
std::string AddressText(const Endpoint& endpoint);
#if defined(__linux__)
void CloseListener(Group* group);
#endif

// Calls `callback` from the loop. A throwing callback becomes the process's
// uncaught exception, as a socket listener's would (see UdpSocketWrap::Call
// for why raw Node-API).
void Call(napi_env env, Napi::AsyncContext& async, napi_value callback, size_t count, napi_value* args) {
  napi_value result = nullptr;
  napi_make_callback(env, async, Napi::Object::New(env), callback, count, args, &result);
  bool thrown = false;
  if (napi_is_exception_pending(env, &thrown) == napi_ok && thrown) {
    napi_value error = nullptr;
    if (napi_get_and_clear_last_exception(env, &error) == napi_ok && error != nullptr) napi_fatal_exception(env, error);
  }
}

// One of a group's callbacks. The callback (and the ticks and microtasks
// after it) may close the group: it stays until this returns, and may be gone
// after.
void CallGroup(napi_env env, Group* group, const Napi::FunctionReference& callback, size_t count, napi_value* args) {
  ++group->calling;
  Call(env, *group->async, callback.Value(), count, args);
  --group->calling;
  ReleaseGroup(group);
}

// relayConnect's onDone arguments.
size_t ConnectArgs(napi_env env, const Pending& pending, const RelayOutcome& outcome, napi_value* args) {
  const Napi::Env js(env);
  const uint64_t now = uv_now(pending.loop);
  args[0] = Napi::Number::New(env, pending.log_id);
  args[1] = Napi::Number::New(env, static_cast<double>(outcome.bytes_up));
  args[2] = Napi::Number::New(env, static_cast<double>(outcome.bytes_down));
  args[3] = Napi::Number::New(env, static_cast<double>(now - pending.started));
  args[4] = outcome.code == nullptr ? js.Undefined() : Napi::String::New(env, outcome.code);
  const bool client = pending.client_port >= 0;
  args[5] = client ? Napi::String::New(env, pending.client_address) : js.Undefined();
  args[6] = client ? Napi::Number::New(env, pending.client_port) : js.Undefined();
  args[7] = pending.has_destination ? Napi::String::New(env, AddressText(pending.destination)) : js.Undefined();
  args[8] = pending.has_destination ? Napi::Number::New(env, pending.destination.port) : js.Undefined();
  return 9;
}

void OnRelayDone(void* data, const RelayOutcome& outcome) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(data));
  if (registry == nullptr || registry->env_gone) {
    // Node-API must not be called for an env that is gone: let these leak.
    pending->on_done.SuppressDestruct();
    pending->async.release();
    return;
  }
  registry->relays.erase(pending->id);
  Group* group = pending->group;
  if (group != nullptr) {
    group->relays.erase(pending->id);
    const auto found = pending->own_key.empty() ? group->own.end() : group->own.find(pending->own_key);
    if (found != group->own.end()) group->own.erase(found);
  }
  napi_env env = pending->env;
  Napi::HandleScope scope(env);
  napi_value args[9];
  const size_t count = group != nullptr ? ConnectArgs(env, *pending, outcome, args) : 3;
  if (group == nullptr) {
    args[0] = Napi::Number::New(env, static_cast<double>(outcome.bytes_up));
    args[1] = Napi::Number::New(env, static_cast<double>(outcome.bytes_down));
    args[2] = outcome.code == nullptr ? Napi::Env(env).Undefined() : Napi::String::New(env, outcome.code);
  }
  if (group != nullptr) return CallGroup(env, group, group->on_done, count, args);
  Call(env, *pending->async, pending->on_done.Value(), count, args);
}

// The thread is stopping: no more JS; end every relay (the loop may not run
// again, so their memory may stay; the process or thread is going anyway).
void CleanUp(void*) {
  if (registry == nullptr) return;
  registry->env_gone = true;
  for (auto& [id, pending] : registry->relays) DestroyRelay(pending->relay);
  registry->relays.clear();
#if defined(__linux__)
  for (auto& [id, group] : registry->groups) CloseListener(group);
#endif
  CloseThreadRelays();
}

Registry& ThisThread(napi_env env);

bool ReadUint(const Napi::Value& value, double most, double* out) {
  if (!value.IsNumber()) return false;
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= 0 && number <= most) || number != static_cast<double>(static_cast<uint64_t>(number))) return false;
  *out = number;
  return true;
}

bool ReadBytes(const Napi::Value& value, const uint8_t** data, size_t* length) {
  *data = nullptr;
  *length = 0;
  if (value.IsUndefined() || value.IsNull()) return true;
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  *data = bytes.Data();
  *length = bytes.ByteLength();
  return true;
}

// This thread's libuv loop; nullptr (and a JS exception) when Node-API has none to give.
uv_loop_t* ThreadLoop(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    ThrowWfpError(env, "ERR_WFP_RELAY", "This thread's event loop is not available", Napi::Object::New(env));
    return nullptr;
  }
  return loop;
}

Napi::Value RelayStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double socket_a, socket_b, idle, half;
  const uint8_t *up, *down;
  size_t up_length, down_length;
  const double most = static_cast<double>(kMaxOsSocket);
  if (!ReadUint(info[0], most, &socket_a) || !ReadUint(info[1], most, &socket_b) ||
      !ReadUint(info[2], kMaxSafeInteger, &idle) || !ReadUint(info[3], kMaxSafeInteger, &half) ||
      !ReadBytes(info[4], &up, &up_length) || !ReadBytes(info[5], &down, &down_length) || !info[6].IsFunction()) {
    ThrowArgumentError(env, true,
                       "Expected (socketA, socketB, idleMs, halfCloseMs, up?, down?, onDone): whole numbers, "
                       "Uint8Arrays or undefined, a function");
    return env.Undefined();
  }
  if (socket_a == socket_b) {
    ThrowArgumentError(env, true, "Expected two different sockets: a relay between a socket and itself would echo it");
    return env.Undefined();
  }
  uv_loop_t* loop = ThreadLoop(env);
  if (loop == nullptr) return env.Undefined();
  RelaySocket a = kNoRelaySocket, b = kNoRelaySocket;
  int error = DuplicateSocket(static_cast<RelaySocket>(socket_a), &a);
  if (error == 0) error = DuplicateSocket(static_cast<RelaySocket>(socket_b), &b);
  if (error != 0) {
    if (a != kNoRelaySocket) CloseRelaySocket(a);
    ThrowWfpError(env, RelayErrorCode(error), "Could not take the sockets over (their duplication failed)",
                  Napi::Object::New(env));
    return env.Undefined();
  }
  ThisThread(env);
  auto pending = std::make_unique<Pending>();
  pending->env = env;
  pending->id = ++registry->next_id;
  pending->on_done = Napi::Persistent(info[6].As<Napi::Function>());
  pending->async = std::make_unique<Napi::AsyncContext>(env, "WfpRedirectRelay");
  const RelaySettings settings{static_cast<uint64_t>(idle), static_cast<uint64_t>(half), kBufferBytes, kSpliceAfter};
  Relay* relay = nullptr;
  const int result = StartRelay(loop, a, b, settings, up, up_length, down, down_length, OnRelayDone, pending.get(), &relay);
  if (result != 0) {
    ThrowWfpError(env, uv_err_name(result), "Could not start relaying these sockets", Napi::Object::New(env));
    return env.Undefined();
  }
  pending->relay = relay;
  const RelayId id = pending->id;
  registry->relays.emplace(id, pending.release());
  return Napi::Number::New(env, id);
}

// An endpoint's address as the JS proxy writes it: IPv4 dotted (mapped or
// not, as the original destination's address is given), IPv6 otherwise.
std::string AddressText(const Endpoint& endpoint) {
  char text[INET6_ADDRSTRLEN] = {0};
  const bool v4 = IsMappedIpv4(endpoint);
  inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? endpoint.address + 12 : endpoint.address, text, sizeof(text));
  return text;
}

#if defined(__linux__)
// An endpoint as 16 address bytes (IPv4 as ::ffff:a.b.c.d) and 2 port bytes.
std::string EndpointKey(const Endpoint& endpoint) {
  std::string key(reinterpret_cast<const char*>(endpoint.address), 16);
  key.push_back(static_cast<char>(endpoint.port >> 8));
  key.push_back(static_cast<char>(endpoint.port & 0xff));
  return key;
}

// "from -> to", as the JS proxy's ownConnections keys are.
std::string EndpointPair(const Endpoint& from, const Endpoint& to) { return EndpointKey(from) + EndpointKey(to); }

bool SameEndpoint(const Endpoint& a, const Endpoint& b) {
  return a.port == b.port && std::memcmp(a.address, b.address, 16) == 0;
}

bool IsWildcard(const Endpoint& endpoint) {
  static const uint8_t kAny6[16] = {0};
  static const uint8_t kAny4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
  return std::memcmp(endpoint.address, kAny6, 16) == 0 || std::memcmp(endpoint.address, kAny4, 16) == 0;
}

// Whether `address` is one of this host's interfaces' addresses (asked only
// for a destination on the listening port of a wildcard listener).
bool IsInterfaceAddress(const Endpoint& address) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return false;
  bool found = false;
  for (const ifaddrs* entry = list; entry != nullptr && !found; entry = entry->ifa_next) {
    const int family = entry->ifa_addr == nullptr ? AF_UNSPEC : entry->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    const socklen_t length = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    sockaddr_storage storage{};
    std::memcpy(&storage, entry->ifa_addr, length);
    Endpoint endpoint{};
    found = EndpointFromSockaddr(storage, length, &endpoint) && std::memcmp(endpoint.address, address.address, 16) == 0;
  }
  freeifaddrs(list);
  return found;
}

// An IP address literal and a port as an Endpoint; false for anything else.
bool ParseEndpoint(const Napi::Value& host, double port, Endpoint* out) {
  if (!host.IsString()) return false;
  const std::string text = host.As<Napi::String>().Utf8Value();
  *out = Endpoint{};
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    StoreMappedIpv4(&v4, out);
  } else if (inet_pton(AF_INET6, text.c_str(), out->address) != 1) {
    return false;
  }
  out->port = static_cast<uint16_t>(port);
  return true;
}

// An address as an Endpoint and (when `text` is given) as Node's
// remoteAddress gives it: an IPv4 client of a dual-stack socket as ::ffff:a.b.c.d.
bool AddressEndpoint(const sockaddr_storage& storage, socklen_t length, Endpoint* out, std::string* text) {
  if (!EndpointFromSockaddr(storage, length, out)) return false;
  if (text == nullptr) return true;
  char buffer[INET6_ADDRSTRLEN] = {0};
  const void* address = storage.ss_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in&>(storage).sin_addr)
                                                     : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6&>(storage).sin6_addr);
  if (inet_ntop(storage.ss_family, address, buffer, sizeof(buffer)) == nullptr) return false;
  *text = buffer;
  return true;
}

// A socket's peer or local endpoint, as AddressEndpoint gives it.
bool SocketEndpoint(int fd, bool peer, Endpoint* out, std::string* text) {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  const int result = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&storage), &length)
                          : getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length);
  return result == 0 && AddressEndpoint(storage, length, out, text);
}

// Where relayConnect takes an accepted socket, decided as the JS proxy
// decides a connection with nothing per connection to ask: the group's fixed
// target or the socket's netfilter record, then the loop checks. Answers the
// refusal's code (nullptr: go on) and fills `destination` where it is known.
const char* Decide(const Group& group, int fd, const Endpoint& client, Endpoint* destination, bool* known) {
  *known = false;
  // A fixed target on a listener bound to one address: the socket's local
  // endpoint is the listener's, not asked (a system call per connection).
  // Otherwise (a wildcard listener; netfilter's redirect) it is asked.
  Endpoint local = group.listener;
  if ((group.original || IsWildcard(group.listener)) && !SocketEndpoint(fd, false, &local, nullptr)) return "ECONNRESET";
  if (group.original) {
    int error = 0;
    const OriginalDestinationResult result = QueryOriginalDestination(static_cast<OsSocket>(fd), destination, &error);
    if (result == OriginalDestinationResult::kError) return uv_err_name(-error);
    // No record, or one that names this socket itself: nobody redirected it.
    if (result == OriginalDestinationResult::kNoRecord || SameEndpoint(*destination, local)) return "ERR_NOT_REDIRECTED";
  } else {
    *destination = group.target;
  }
  *known = true;
  // One of this listener's own outbound connections come back: from its local
  // endpoint, to this proxy or (where each goes to its own) to where it goes.
  if (group.own.count(EndpointPair(client, local)) > 0) return "ERR_PROXY_LOOP";
  if (group.original && group.own.count(EndpointPair(client, *destination)) > 0) return "ERR_PROXY_LOOP";
  // The destination is this proxy's own listening endpoint.
  if (destination->port == group.listener.port &&
      (SameEndpoint(*destination, group.listener) || (IsWildcard(group.listener) && IsInterfaceAddress(*destination)))) {
    return "ERR_PROXY_LOOP";
  }
  return nullptr;
}
#endif  // defined(__linux__)

Registry& ThisThread(napi_env env) {
  if (registry == nullptr) {
    registry = new Registry();
    napi_add_env_cleanup_hook(env, CleanUp, nullptr);
  }
  return *registry;
}

// Deletes a closed group once no relay of it is left and its callback is not running.
void ReleaseGroup(Group* group) {
  if (!group->closed || !group->relays.empty() || group->calling > 0) return;
  registry->groups.erase(group->id);
  if (registry->env_gone) {
    group->on_done.SuppressDestruct();
    group->on_refused.SuppressDestruct();
    group->async.release();
  }
  delete group;
}

#if defined(__linux__)
// The group `value` names; nullptr for none, or (`open`) for one closed already.
Group* FindGroup(const Napi::Value& value, bool open) {
  double id;
  if (registry == nullptr || !ReadUint(value, kMaxSafeInteger, &id)) return nullptr;
  const auto found = registry->groups.find(static_cast<RelayId>(id));
  return found == registry->groups.end() || (open && found->second->closed) ? nullptr : found->second;
}

Napi::Value RelayGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double listen_port, target_port, mark, connect_ms, idle, half;
  Endpoint listener{}, target{};
  const bool original = info[2].IsNull();
  const bool no_mark = info[4].IsNumber() && info[4].As<Napi::Number>().DoubleValue() == -1;
  if (!ReadUint(info[1], 65535, &listen_port) || !ParseEndpoint(info[0], listen_port, &listener) ||
      !ReadUint(info[3], 65535, &target_port) || !(original || ParseEndpoint(info[2], target_port, &target)) ||
      !(no_mark || ReadUint(info[4], 0xffffffff, &mark)) || !ReadUint(info[5], kMaxSafeInteger, &connect_ms) ||
      !ReadUint(info[6], kMaxSafeInteger, &idle) || !ReadUint(info[7], kMaxSafeInteger, &half) ||
      !info[8].IsFunction()) {
    ThrowArgumentError(env, true,
                       "Expected (listenHost, listenPort, targetHost or null, targetPort, mark, connectMs, idleMs, "
                       "halfCloseMs, onDone): IP addresses, whole numbers (mark -1 for none), a function");
    return env.Undefined();
  }
  Registry& relays = ThisThread(env);
  auto group = std::make_unique<Group>();
  group->id = ++relays.next_group;
  group->original = original;
  group->target = target;
  group->listener = listener;
  group->mark = no_mark ? -1 : static_cast<int64_t>(mark);
  group->connect_ms = static_cast<uint64_t>(connect_ms);
  group->settings = RelaySettings{static_cast<uint64_t>(idle), static_cast<uint64_t>(half), kBufferBytes, kSpliceAfter};
  group->on_done = Napi::Persistent(info[8].As<Napi::Function>());
  group->async = std::make_unique<Napi::AsyncContext>(env, "WfpRedirectRelay");
  const RelayId id = group->id;
  relays.groups.emplace(id, group.release());
  return Napi::Number::New(env, id);
}

// Decides, connects and relays `fd`, a socket the group's listener accepted
// (owned from now on), as relayConnect's onDone describes. `peer`: its
// client's address as accept4 gave it; nullptr: asked of the socket.
// `ready`: a non-blocking stream socket already. Answers 0, or libuv's error
// when the relay could not start (`fd` is closed then, onDone never comes).
int RelayAccepted(napi_env env, uv_loop_t* loop, Group* group, int fd, bool ready, const sockaddr_storage* peer,
                  socklen_t peer_length, double log_id, RelayId* id) {
  auto pending = std::make_unique<Pending>();
  pending->env = env;
  pending->id = ++registry->next_id;
  pending->group = group;
  pending->log_id = log_id;
  pending->loop = loop;
  pending->started = uv_now(loop);

  ConnectTarget target{};
  target.mark = group->mark;
  target.connect_ms = group->connect_ms;
  Endpoint client{}, destination{};
  const bool found = peer != nullptr ? AddressEndpoint(*peer, peer_length, &client, &pending->client_address)
                                     : SocketEndpoint(fd, true, &client, &pending->client_address);
  if (!found) {
    // Gone already (ENOTCONN): nothing to relay.
    target.refusal = "ECONNRESET";
  } else {
    pending->client_port = client.port;
    target.refusal = Decide(*group, fd, client, &destination, &pending->has_destination);
    int length = 0;
    if (pending->has_destination) {
      pending->destination = destination;
      if (SockaddrFromEndpoint(destination, IsMappedIpv4(destination) ? 4 : 6, &target.address, &length)) {
        target.length = static_cast<socklen_t>(length);
      } else {
        target.refusal = "EAFNOSUPPORT";
      }
    }
  }
  Relay* relay = nullptr;
  sockaddr_storage outbound;
  socklen_t outbound_length = 0;
  const int result = ConnectAndRelay(loop, fd, ready, target, group->settings, OnRelayDone, pending.get(), &relay,
                                     &outbound, &outbound_length);
  if (result != 0) return result;
  Endpoint from{};
  if (outbound_length > 0 && EndpointFromSockaddr(outbound, outbound_length, &from)) {
    pending->own_key = EndpointPair(from, destination);
    group->own.insert(pending->own_key);
  }
  pending->relay = relay;
  group->relays.insert(pending->id);
  *id = pending->id;
  registry->relays.emplace(*id, pending.release());
  return 0;
}

Napi::Value RelayConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double fd, log_id;
  Group* group = FindGroup(info[1], true);
  if (!ReadUint(info[0], 0x7fffffff, &fd) || group == nullptr || !ReadUint(info[2], kMaxSafeInteger, &log_id)) {
    ThrowArgumentError(env, true, "Expected (fd, group, logId): whole numbers, a group relayGroup made and not closed");
    return env.Undefined();
  }
  uv_loop_t* loop = ThreadLoop(env);
  if (loop == nullptr) return env.Undefined();
  RelaySocket a = kNoRelaySocket;
  const int error = DuplicateSocket(static_cast<RelaySocket>(fd), &a);
  if (error != 0) {
    ThrowWfpError(env, RelayErrorCode(error), "Could not take the socket over (dup failed)", Napi::Object::New(env));
    return env.Undefined();
  }
  RelayId id = 0;
  const int result = RelayAccepted(env, loop, group, a, false, nullptr, 0, log_id, &id);
  if (result != 0) {
    ThrowWfpError(env, uv_err_name(result), "Could not relay this socket", Napi::Object::New(env));
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(id));
}

// At most this many accepts per wake-up, so that a burst of connections does
// not starve the relays of the loop (the poll is level-triggered: the rest
// wake it again).
constexpr int kAcceptsPerWakeUp = 32;

// How long the listener rests after an accept failed for want of resources
// (EMFILE, ENFILE, ENOBUFS, ENOMEM) or for a reason it cannot get past: the
// connection waits in the kernel's queue meanwhile, and the loop does not spin.
constexpr uint64_t kAcceptPauseMs = 100;

void OnListenerClosed(uv_handle_t* handle) {
  Listener* listener = static_cast<Listener*>(handle->data);
  if (--listener->open_handles > 0) return;
  delete listener;
}

// Stops accepting for good: the group lets go of its listener. Its socket
// closes now, not once libuv has let go of the handles (a loop turn later):
// a shutdown() then listen() on the same port must find the port free, as
// it does after Node's own server.close(). uv_close has taken the descriptor
// out of the loop's epoll set already.
void CloseListener(Group* group) {
  Listener* listener = group->accepting;
  if (listener == nullptr) return;
  group->accepting = nullptr;
  listener->group = nullptr;
  listener->open_handles = 2;
  uv_close(reinterpret_cast<uv_handle_t*>(&listener->poll), OnListenerClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&listener->pause), OnListenerClosed);
  close(listener->fd);
  if (listener->reserve >= 0) close(listener->reserve);
  listener->fd = listener->reserve = -1;
}

// Tells JavaScript that `count` connections were refused with `code` (the
// group may be gone after this).
void Refused(Listener* listener, const char* code, double count) {
  Group* group = listener->group;
  if (group == nullptr || registry == nullptr || registry->env_gone) return;
  napi_env env = listener->env;
  Napi::HandleScope scope(env);
  napi_value args[2] = {Napi::String::New(env, code), Napi::Number::New(env, count)};
  CallGroup(env, group, group->on_refused, 2, args);
}

void OnListenerPoll(uv_poll_t* handle, int status, int events);

void OnPauseOver(uv_timer_t* timer) {
  Listener* listener = static_cast<Listener*>(timer->data);
  if (listener->group == nullptr) return;
  const int result = uv_poll_start(&listener->poll, UV_READABLE, OnListenerPoll);
  if (result == 0) return;
  uv_timer_start(&listener->pause, OnPauseOver, kAcceptPauseMs, 0);
  Refused(listener, uv_err_name(result), 1);
}

// Whether accept4's error is the failed connection's own (Linux passes a new
// connection's pending network error on that way): the next one may do.
bool ConnectionsOwnError(int error) {
  switch (error) {
    case EINTR: case ECONNABORTED: case EPROTO: case ENOPROTOOPT: case ENETDOWN: case ENONET:
    case EHOSTDOWN: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH: case EPERM:
      return true;
    default:
      return false;
  }
}

// Out of descriptors: gives the reserve up, accepts and closes the
// connections waiting (each client sees its connection closed, as Node's own
// server closes it then; at most a thousand, so that a flood cannot hold the
// loop), takes the reserve again. Answers how many.
double RefuseWaiting(Listener* listener) {
  if (listener->reserve < 0) return 0;
  close(listener->reserve);
  double refused = 0;
  for (int round = 0; round < 1000; ++round) {
    const int fd = accept4(listener->fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (ConnectionsOwnError(errno)) continue;
      break;
    }
    close(fd);
    ++refused;
  }
  listener->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return refused;
}

// Accepts what the kernel has queued: each connection goes to RelayAccepted,
// or is closed at once when the group relays max_connections already (as
// Node's server does past maxConnections); JavaScript hears of those
// refusals once per wake-up, counted.
void OnListenerPoll(uv_poll_t* handle, int status, int) {
  Listener* listener = static_cast<Listener*>(handle->data);
  Group* group = listener->group;
  if (group == nullptr || registry == nullptr || registry->env_gone) return;
  double full = 0, out_of_descriptors = 0;
  const char* descriptors_code = nullptr;  // EMFILE or ENFILE
  const char* failed = status < 0 ? uv_err_name(status) : nullptr;
  for (int round = 0; round < kAcceptsPerWakeUp && failed == nullptr; ++round) {
    sockaddr_storage peer;
    socklen_t length = sizeof(peer);
    const int fd = accept4(listener->fd, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if ((errno == EMFILE || errno == ENFILE) && listener->reserve >= 0) {
        descriptors_code = uv_err_name(-errno);
        out_of_descriptors = RefuseWaiting(listener);
        break;
      }
      if (!ConnectionsOwnError(errno)) failed = uv_err_name(-errno);
      continue;
    }
    if (group->relays.size() >= group->max_connections) {
      close(fd);
      ++full;
      continue;
    }
    RelayId id = 0;
    const int result = RelayAccepted(listener->env, listener->loop, group, fd, true, &peer, length, 0, &id);
    if (result != 0) failed = uv_err_name(result);  // fd is closed
  }
  if (failed != nullptr) {
    uv_poll_stop(&listener->poll);
    uv_timer_start(&listener->pause, OnPauseOver, kAcceptPauseMs, 0);
  }
  // A reserve that could not be taken again (another thread had the
  // descriptor freed for it) is asked for again, as libuv's own accept does.
  if (listener->reserve < 0) listener->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Each call may close the group (and free it): the listener, which outlives it, says whether it still is.
  if (full > 0) Refused(listener, "ERR_MAX_CONNECTIONS", full);
  if (out_of_descriptors > 0) Refused(listener, descriptors_code, out_of_descriptors);
  if (failed != nullptr) Refused(listener, failed, 1);
}

// relayGroupListen(group, fd, maxConnections, onRefused): the group accepts
// from a duplicate of the listening socket `fd` itself from now on (the
// caller closes its own handle of it). onRefused(code, count): connections
// refused at once, ERR_MAX_CONNECTIONS past maxConnections, or an accept's
// failure (EMFILE, ...; accepting rests for kAcceptPauseMs then).
Napi::Value RelayGroupListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double fd, max_connections;
  Group* group = FindGroup(info[0], true);
  if (group == nullptr || group->accepting != nullptr || !ReadUint(info[1], 0x7fffffff, &fd) ||
      !ReadUint(info[2], kMaxSafeInteger, &max_connections) || max_connections < 1 || !info[3].IsFunction()) {
    ThrowArgumentError(env, true,
                       "Expected (group, fd, maxConnections, onRefused): a group relayGroup made, not closed and not "
                       "listening yet, whole numbers (maxConnections at least 1), a function");
    return env.Undefined();
  }
  uv_loop_t* loop = ThreadLoop(env);
  if (loop == nullptr) return env.Undefined();
  int type = 0, listening = 0;
  socklen_t length = sizeof(type);
  socklen_t listening_length = sizeof(listening);
  if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_STREAM ||
      getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &listening, &listening_length) != 0 || listening == 0) {
    ThrowArgumentError(env, true, "Expected the descriptor of a listening TCP socket");
    return env.Undefined();
  }
  auto listener = std::make_unique<Listener>();
  int error = DuplicateSocket(static_cast<RelaySocket>(fd), &listener->fd);
  if (error == 0 && !PrepareStreamSocket(listener->fd)) error = errno != 0 ? errno : EINVAL;
  int result = error == 0 ? uv_poll_init(loop, &listener->poll, listener->fd) : 0;
  if (error != 0 || result != 0) {
    if (listener->fd >= 0) close(listener->fd);
    ThrowWfpError(env, error != 0 ? RelayErrorCode(error) : uv_err_name(result),
                  "Could not take the listening socket over", Napi::Object::New(env));
    return env.Undefined();
  }
  uv_timer_init(loop, &listener->pause);  // cannot fail
  listener->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
  listener->poll.data = listener.get();
  listener->pause.data = listener.get();
  listener->env = env;
  listener->loop = loop;
  listener->group = group;
  group->accepting = listener.release();
  group->max_connections = static_cast<size_t>(max_connections);
  group->on_refused = Napi::Persistent(info[3].As<Napi::Function>());
  result = uv_poll_start(&group->accepting->poll, UV_READABLE, OnListenerPoll);
  if (result != 0) {
    CloseListener(group);
    ThrowWfpError(env, uv_err_name(result), "Could not watch the listening socket", Napi::Object::New(env));
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

// Ends every open relay of the group, without an error or (cut) with ERR_PROXY_SHUTDOWN; each still reports. Answers
// how many it ended: one that had ended by itself, its report still to come, keeps its own end and is not counted.
Napi::Value RelayGroupDestroy(const Napi::CallbackInfo& info) {
  if (!info[1].IsUndefined() && !info[1].IsBoolean()) {
    ThrowArgumentError(info.Env(), true, "Expected cut to be a boolean");
    return info.Env().Undefined();
  }
  const char* code = info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value() ? "ERR_PROXY_SHUTDOWN" : nullptr;
  Group* group = FindGroup(info[0], false);
  if (group == nullptr) return Napi::Number::New(info.Env(), 0);
  const std::vector<RelayId> ids(group->relays.begin(), group->relays.end());
  size_t ended = 0;
  for (const RelayId id : ids) {
    const auto found = registry->relays.find(id);
    if (found != registry->relays.end() && DestroyRelay(found->second->relay, code)) ++ended;
  }
  return Napi::Number::New(info.Env(), static_cast<double>(ended));
}

// How many relays of the group are open; 0 for a group that is gone.
Napi::Value RelayGroupSize(const Napi::CallbackInfo& info) {
  Group* group = FindGroup(info[0], false);
  return Napi::Number::New(info.Env(), group == nullptr ? 0 : static_cast<double>(group->relays.size()));
}

// No more relayConnect for the group; it goes once its relays have ended.
Napi::Value RelayGroupClose(const Napi::CallbackInfo& info) {
  Group* group = FindGroup(info[0], true);
  if (group == nullptr) return Napi::Boolean::New(info.Env(), false);
  group->closed = true;
  CloseListener(group);
  ReleaseGroup(group);
  return Napi::Boolean::New(info.Env(), true);
}
#endif  // defined(__linux__)

Napi::Value RelayDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double id;
  if (!ReadUint(info[0], kMaxSafeInteger, &id)) {
    ThrowArgumentError(env, true, "Expected a relay id");
    return env.Undefined();
  }
  if (registry == nullptr) return Napi::Boolean::New(env, false);
  auto found = registry->relays.find(static_cast<RelayId>(id));
  if (found == registry->relays.end()) return Napi::Boolean::New(env, false);
  return Napi::Boolean::New(env, DestroyRelay(found->second->relay));
}

}  // namespace

void InitRelay(Napi::Env env, Napi::Object exports) {
  exports.Set("relayStart", Napi::Function::New(env, RelayStart));
  exports.Set("relayDestroy", Napi::Function::New(env, RelayDestroy));
#if defined(__linux__)
  exports.Set("relayGroup", Napi::Function::New(env, RelayGroup));
  exports.Set("relayConnect", Napi::Function::New(env, RelayConnect));
  exports.Set("relayGroupDestroy", Napi::Function::New(env, RelayGroupDestroy));
  exports.Set("relayGroupClose", Napi::Function::New(env, RelayGroupClose));
  exports.Set("relayGroupListen", Napi::Function::New(env, RelayGroupListen));
  exports.Set("relayGroupSize", Napi::Function::New(env, RelayGroupSize));
#endif
}

}  // namespace wfp

#else

namespace wfp {
void InitRelay(Napi::Env, Napi::Object) {}
}  // namespace wfp

#endif
