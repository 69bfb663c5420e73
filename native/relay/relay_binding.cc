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
//   relayGroupDestroy(group): ends the group's open relays without an error
//       (each still reports); how many. relayGroupClose(group): no more
//       relayConnect; the group goes once its relays have. (relayGroup to
//       relayGroupClose: Linux only.)
//   relayDestroy(id): ends a relay without an error (onDone still comes);
//       false when it has ended already.
#include "relay_binding.h"

#if defined(__linux__) || defined(_WIN32)

#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
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
  Napi::AsyncContext& async = group != nullptr ? *group->async : *pending->async;
  Napi::Value callback = group != nullptr ? group->on_done.Value() : pending->on_done.Value();
  napi_value result = nullptr;
  // The callback (and the ticks and microtasks after it) may close the group: it stays until this returns.
  if (group != nullptr) ++group->calling;
  napi_make_callback(env, async, Napi::Object::New(env), callback, count, args, &result);
  // A throwing callback becomes the process's uncaught exception, as a
  // socket listener's would (see UdpSocketWrap::Call for why raw Node-API).
  bool thrown = false;
  if (napi_is_exception_pending(env, &thrown) == napi_ok && thrown) {
    napi_value error = nullptr;
    if (napi_get_and_clear_last_exception(env, &error) == napi_ok && error != nullptr) napi_fatal_exception(env, error);
  }
  if (group != nullptr) {
    --group->calling;
    ReleaseGroup(group);
  }
}

// The thread is stopping: no more JS; end every relay (the loop may not run
// again, so their memory may stay; the process or thread is going anyway).
void CleanUp(void*) {
  if (registry == nullptr) return;
  registry->env_gone = true;
  for (auto& [id, pending] : registry->relays) DestroyRelay(pending->relay);
  registry->relays.clear();
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

// A socket's peer or local endpoint, and (peer) its address as Node's
// remoteAddress gives it: an IPv4 client of a dual-stack socket as ::ffff:a.b.c.d.
bool SocketEndpoint(int fd, bool peer, Endpoint* out, std::string* text) {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  const int result = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&storage), &length)
                          : getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length);
  if (result != 0 || !EndpointFromSockaddr(storage, length, out)) return false;
  if (text == nullptr) return true;
  char buffer[INET6_ADDRSTRLEN] = {0};
  const void* address = storage.ss_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in&>(storage).sin_addr)
                                                     : static_cast<const void*>(&reinterpret_cast<sockaddr_in6&>(storage).sin6_addr);
  if (inet_ntop(storage.ss_family, address, buffer, sizeof(buffer)) == nullptr) return false;
  *text = buffer;
  return true;
}

// Where relayConnect takes an accepted socket, decided as the JS proxy
// decides a connection with nothing per connection to ask: the group's fixed
// target or the socket's netfilter record, then the loop checks. Answers the
// refusal's code (nullptr: go on) and fills `destination` where it is known.
const char* Decide(const Group& group, int fd, const Endpoint& client, Endpoint* destination, bool* known) {
  *known = false;
  Endpoint local{};
  if (!SocketEndpoint(fd, false, &local, nullptr)) return "ECONNRESET";
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
  if (!SocketEndpoint(a, true, &client, &pending->client_address)) {
    // Gone already (ENOTCONN): nothing to relay.
    target.refusal = "ECONNRESET";
  } else {
    pending->client_port = client.port;
    target.refusal = Decide(*group, a, client, &destination, &pending->has_destination);
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
  const int result =
      ConnectAndRelay(loop, a, target, group->settings, OnRelayDone, pending.get(), &relay, &outbound, &outbound_length);
  if (result != 0) {
    ThrowWfpError(env, uv_err_name(result), "Could not relay this socket", Napi::Object::New(env));
    return env.Undefined();
  }
  Endpoint from{};
  if (outbound_length > 0 && EndpointFromSockaddr(outbound, outbound_length, &from)) {
    pending->own_key = EndpointPair(from, destination);
    group->own.insert(pending->own_key);
  }
  pending->relay = relay;
  group->relays.insert(pending->id);
  const RelayId id = pending->id;
  registry->relays.emplace(id, pending.release());
  return Napi::Number::New(env, id);
}

// Ends every open relay of the group without an error (each still reports); answers how many.
Napi::Value RelayGroupDestroy(const Napi::CallbackInfo& info) {
  Group* group = FindGroup(info[0], false);
  if (group == nullptr) return Napi::Number::New(info.Env(), 0);
  const std::vector<RelayId> ids(group->relays.begin(), group->relays.end());
  for (const RelayId id : ids) {
    const auto found = registry->relays.find(id);
    if (found != registry->relays.end()) DestroyRelay(found->second->relay);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(ids.size()));
}

// No more relayConnect for the group; it goes once its relays have ended.
Napi::Value RelayGroupClose(const Napi::CallbackInfo& info) {
  Group* group = FindGroup(info[0], true);
  if (group == nullptr) return Napi::Boolean::New(info.Env(), false);
  group->closed = true;
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
  DestroyRelay(found->second->relay);
  return Napi::Boolean::New(env, true);
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
#endif
}

}  // namespace wfp

#else

namespace wfp {
void InitRelay(Napi::Env, Napi::Object) {}
}  // namespace wfp

#endif
