// binding.relayStart / binding.relayDestroy: the JS face of the native relay
// (relay_engine.h). Linux only; elsewhere InitRelay adds nothing and
// lib/proxy/native-relay.ts relays on streams.
//
//   relayStart(fdA, fdB, idleMs, halfCloseMs, up?, down?, onDone): id
//       fdA/fdB are Node's own descriptors of two connected TCP sockets; the
//       relay works on duplicates of them (F_DUPFD_CLOEXEC), so that Node may
//       keep and later close its own without a FIN or RST reaching a peer
//       while the relay still has the socket. `up` goes to B first, `down`
//       to A. onDone(bytesUp, bytesDown, code?) once, from the loop, after the
//       duplicates are closed.
//   relayDestroy(id): ends it without an error (onDone still comes); false
//       when it has ended already.
#include "relay_binding.h"

#if defined(__linux__)

#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <unordered_map>

#include "../js_args.h"
#include "../js_errors.h"
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

struct Pending {
  napi_env env;
  uint32_t id;
  Relay* relay;
  Napi::FunctionReference on_done;
  std::unique_ptr<Napi::AsyncContext> async;
};

// The relays of this thread (each thread has its own loop and Node env).
struct Registry {
  std::unordered_map<uint32_t, Pending*> relays;
  uint32_t next_id = 0;
  bool env_gone = false;
};
thread_local Registry* registry = nullptr;

void OnRelayDone(void* data, const RelayOutcome& outcome) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(data));
  if (registry == nullptr || registry->env_gone) {
    // Node-API must not be called for an env that is gone: let these leak.
    pending->on_done.SuppressDestruct();
    pending->async.release();
    return;
  }
  registry->relays.erase(pending->id);
  napi_env env = pending->env;
  Napi::HandleScope scope(env);
  napi_value args[3] = {
      Napi::Number::New(env, static_cast<double>(outcome.bytes_up)),
      Napi::Number::New(env, static_cast<double>(outcome.bytes_down)),
      outcome.code == nullptr ? Napi::Env(env).Undefined() : Napi::String::New(env, outcome.code)};
  napi_value result = nullptr;
  napi_make_callback(env, *pending->async, Napi::Object::New(env), pending->on_done.Value(), 3, args, &result);
  // A throwing callback becomes the process's uncaught exception, as a
  // socket listener's would (see UdpSocketWrap::Call for why raw Node-API).
  bool thrown = false;
  if (napi_is_exception_pending(env, &thrown) == napi_ok && thrown) {
    napi_value error = nullptr;
    if (napi_get_and_clear_last_exception(env, &error) == napi_ok && error != nullptr) napi_fatal_exception(env, error);
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

Napi::Value RelayStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double fd_a, fd_b, idle, half;
  const uint8_t *up, *down;
  size_t up_length, down_length;
  if (!ReadUint(info[0], 0x7fffffff, &fd_a) || !ReadUint(info[1], 0x7fffffff, &fd_b) ||
      !ReadUint(info[2], kMaxSafeInteger, &idle) || !ReadUint(info[3], kMaxSafeInteger, &half) ||
      !ReadBytes(info[4], &up, &up_length) || !ReadBytes(info[5], &down, &down_length) || !info[6].IsFunction()) {
    ThrowArgumentError(env, true,
                       "Expected (fdA, fdB, idleMs, halfCloseMs, up?, down?, onDone): whole numbers, "
                       "Uint8Arrays or undefined, a function");
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    ThrowWfpError(env, "ERR_WFP_RELAY", "This thread's event loop is not available", Napi::Object::New(env));
    return env.Undefined();
  }
  const int a = fcntl(static_cast<int>(fd_a), F_DUPFD_CLOEXEC, 0);
  const int b = a < 0 ? -1 : fcntl(static_cast<int>(fd_b), F_DUPFD_CLOEXEC, 0);
  if (a < 0 || b < 0) {
    const int error = errno;
    if (a >= 0) close(a);
    ThrowWfpError(env, uv_err_name(-error), "Could not take the sockets over (dup failed)", Napi::Object::New(env));
    return env.Undefined();
  }
  if (registry == nullptr) {
    registry = new Registry();
    napi_add_env_cleanup_hook(env, CleanUp, nullptr);
  }
  auto pending = std::make_unique<Pending>();
  pending->env = env;
  pending->id = ++registry->next_id;
  pending->on_done = Napi::Persistent(info[6].As<Napi::Function>());
  pending->async = std::make_unique<Napi::AsyncContext>(env, "WfpRedirectRelay");
  const RelaySettings settings{static_cast<uint64_t>(idle), static_cast<uint64_t>(half), kBufferBytes};
  Relay* relay = nullptr;
  const int result = StartRelay(loop, a, b, settings, up, up_length, down, down_length, OnRelayDone, pending.get(), &relay);
  if (result != 0) {
    ThrowWfpError(env, uv_err_name(result), "Could not start relaying these sockets", Napi::Object::New(env));
    return env.Undefined();
  }
  pending->relay = relay;
  const uint32_t id = pending->id;
  registry->relays.emplace(id, pending.release());
  return Napi::Number::New(env, id);
}

Napi::Value RelayDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double id;
  if (!ReadUint(info[0], 0xffffffff, &id)) {
    ThrowArgumentError(env, true, "Expected a relay id");
    return env.Undefined();
  }
  if (registry == nullptr) return Napi::Boolean::New(env, false);
  auto found = registry->relays.find(static_cast<uint32_t>(id));
  if (found == registry->relays.end()) return Napi::Boolean::New(env, false);
  DestroyRelay(found->second->relay);
  return Napi::Boolean::New(env, true);
}

}  // namespace

void InitRelay(Napi::Env env, Napi::Object exports) {
  exports.Set("relayStart", Napi::Function::New(env, RelayStart));
  exports.Set("relayDestroy", Napi::Function::New(env, RelayDestroy));
}

}  // namespace wfp

#else

namespace wfp {
void InitRelay(Napi::Env, Napi::Object) {}
}  // namespace wfp

#endif
