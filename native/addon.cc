// wfp_redirect.node: module init and the checks at the JS boundary.
//
// lib/ validates what users pass and gives the rich errors; this file checks
// again, tersely, so that no call into the binding can crash the process.
// Failures are thrown through js_errors.h.
#include <napi.h>
#include <uv.h>

#include <string>

#include "js_args.h"
#include "js_errors.h"
#include "original_destination.h"
#include "os_socket.h"
#include "process_binding.h"
#include "redirect_ioctl.h"
#include "relay/relay_binding.h"
#include "socket_lookup.h"
#include "socket_mark.h"
#include "udp_binding.h"
#include "wsa_errors.h"

#ifndef WFP_REDIRECT_BUILD
#define WFP_REDIRECT_BUILD "unknown"
#endif

namespace wfp {
namespace {

// getSocketHandle(localAddress, localPort, remoteAddress, remotePort): number
Napi::Value GetSocketHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsNumber() || !info[2].IsString() ||
      !info[3].IsNumber()) {
    ThrowArgumentError(env, true,
                       "Expected (localAddress, localPort, remoteAddress, "
                       "remotePort) as strings and numbers");
    return env.Undefined();
  }
  const std::string local_text = info[0].As<Napi::String>();
  const std::string peer_text = info[2].As<Napi::String>();
  const double local_port = info[1].As<Napi::Number>().DoubleValue();
  const double peer_port = info[3].As<Napi::Number>().DoubleValue();
  Endpoint local, peer;
  if (!ParseEndpoint(local_text, local_port, &local) ||
      !ParseEndpoint(peer_text, peer_port, &peer)) {
    ThrowArgumentError(env, false,
                       "Not an IP address and port: " + local_text + " / " +
                           peer_text);
    return env.Undefined();
  }

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    ThrowWfpError(env, "ERR_WFP_SOCKET_NOT_FOUND",
                  "This thread's event loop is not available",
                  Napi::Object::New(env));
    return env.Undefined();
  }
  OsSocket socket = 0;
  if (!FindTcpSocket(loop, local, peer, &socket, nullptr)) {
    ThrowWfpError(
        env, "ERR_WFP_SOCKET_NOT_FOUND",
        "No open TCP socket on this thread's event loop has local address " +
            local_text + " port " + std::to_string(local.port) +
            " and peer " + peer_text + " port " + std::to_string(peer.port) +
            ": the connection was closed, or the socket belongs to another "
            "thread (look it up from the worker that owns it)",
        Napi::Object::New(env));
    return env.Undefined();
  }
  if (static_cast<double>(socket) > kMaxSafeInteger) {
    ThrowWfpError(env, "ERR_WFP_SOCKET_NOT_FOUND",
                  "The OS socket value does not fit in a JavaScript number",
                  Napi::Object::New(env));
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(socket));
}

// createTcpSocket(family: 4 | 6): number. An unconnected TCP socket for
// connectRedirected, which gives it the records and then hands it to libuv.
Napi::Value CreateTcpSocketFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double family = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (family != 4 && family != 6) {
    ThrowArgumentError(env, false, "The family must be 4 or 6");
    return env.Undefined();
  }
  OsSocket socket = 0;
  const int error = CreateTcpSocket(static_cast<int>(family), &socket);
  if (error != 0) {
    ThrowSystemError(env, error, kCreateSocketCall, kCreateSocketCall,
                     "could not create the outbound TCP socket");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(socket));
}

// setSocketMark(osSocket, mark): SO_MARK (Linux), for connectRedirected's `mark`.
Napi::Value SetSocketMarkFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OsSocket socket;
  if (!ReadOsSocket(info, 0, &socket)) return env.Undefined();
  uint32_t mark = 0;
  if (!ReadMark(info, 1, &mark)) return env.Undefined();
  const int error = SetSocketMark(socket, mark);
  if (error != 0) {
    ThrowSystemError(env, error, "setsockopt", "setsockopt(SO_MARK)", PrivilegeHint(error, "marking sockets needs CAP_NET_ADMIN (run as root, or setcap cap_net_admin+ep on the node binary)", "the socket could not be marked"));
  }
  return env.Undefined();
}

// closeSocket(osSocket): for a socket createTcpSocket made that libuv never adopted.
Napi::Value CloseSocketFn(const Napi::CallbackInfo& info) {
  OsSocket socket;
  if (ReadOsSocket(info, 0, &socket)) CloseOsSocket(socket);
  return info.Env().Undefined();
}

// originalDestination(osSocket): { address, port } | null. Netfilter's
// destination before NAT (Linux); null where it keeps no record.
Napi::Value OriginalDestination(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OsSocket socket;
  if (!ReadOsSocket(info, 0, &socket)) return env.Undefined();
  Endpoint found;
  int error = 0;
  switch (QueryOriginalDestination(socket, &found, &error)) {
    case OriginalDestinationResult::kFound: {
      Napi::Object result = Napi::Object::New(env);
      result.Set("address", FormatAddress(found));
      result.Set("port", found.port);
      return result;
    }
    case OriginalDestinationResult::kNoRecord:
      return env.Null();
    case OriginalDestinationResult::kError:
      break;
  }
  ThrowSystemError(env, error, "getsockopt", "getsockopt(SO_ORIGINAL_DST)", nullptr);
  return env.Undefined();
}

struct BufferSink {
  napi_env env;
  Napi::Value buffer;
};

void CopyIntoBuffer(void* context, const uint8_t* data, uint32_t size) {
  BufferSink* sink = static_cast<BufferSink*>(context);
  // A fresh copy: the caller's bytes are scratch memory.
  sink->buffer = Napi::Buffer<uint8_t>::Copy(sink->env, data, size);
}

Napi::Value QueryBlobOf(const Napi::CallbackInfo& info, uint32_t ioctl) {
  Napi::Env env = info.Env();
  OsSocket socket;
  if (!ReadOsSocket(info, 0, &socket)) return env.Undefined();
  BufferSink sink{env, env.Undefined()};
  const Outcome outcome = QueryRedirectBlob(socket, ioctl, CopyIntoBuffer, &sink);
  if (outcome.status != Status::kOk) {
    ThrowFailure(env, outcome, ioctl);
    return env.Undefined();
  }
  return sink.buffer;
}

// queryRedirectRecords(socket: number): Buffer
Napi::Value QueryRedirectRecords(const Napi::CallbackInfo& info) {
  return QueryBlobOf(info, kSioQueryRedirectRecords);
}

// queryRedirectContext(socket: number): Buffer
Napi::Value QueryRedirectContext(const Napi::CallbackInfo& info) {
  return QueryBlobOf(info, kSioQueryRedirectContext);
}

// checkRecords(records: Uint8Array): undefined. Throws what setting these
// records would, for callers that check before doing anything else:
// connectRedirected checks before it creates a socket.
Napi::Value CheckRecords(const Napi::CallbackInfo& info) {
  Napi::Uint8Array records;
  ReadRecords(info, 0, &records);
  return info.Env().Undefined();
}

// setRedirectRecords(socket: number, records: Uint8Array): undefined
Napi::Value SetRedirectRecordsOn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OsSocket socket;
  Napi::Uint8Array records;
  if (!ReadOsSocket(info, 0, &socket) || !ReadRecords(info, 1, &records)) {
    return env.Undefined();
  }
  const Outcome outcome =
      SetRedirectRecords(socket, records.Data(), records.ByteLength());
  if (outcome.status != Status::kOk) {
    ThrowFailure(env, outcome, kSioSetRedirectRecords);
  }
  return env.Undefined();
}

}  // namespace
}  // namespace wfp

namespace {

using namespace wfp;

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitErrorClassSlot(env);
  exports.Set("getSocketHandle", Napi::Function::New(env, GetSocketHandle));
  exports.Set("queryRedirectRecords",
              Napi::Function::New(env, QueryRedirectRecords));
  exports.Set("queryRedirectContext",
              Napi::Function::New(env, QueryRedirectContext));
  exports.Set("setRedirectRecords",
              Napi::Function::New(env, SetRedirectRecordsOn));
  exports.Set("checkRecords", Napi::Function::New(env, CheckRecords));
  exports.Set("createTcpSocket", Napi::Function::New(env, CreateTcpSocketFn));
  exports.Set("closeSocket", Napi::Function::New(env, CloseSocketFn));
  exports.Set("setSocketMark", Napi::Function::New(env, SetSocketMarkFn));
  exports.Set("hasSocketMark", Napi::Boolean::New(env, PlatformHasSocketMark()));
  exports.Set("originalDestination", Napi::Function::New(env, OriginalDestination));
  InitUdpSocket(env, exports);
  InitProcessLookup(env, exports);
  InitRelay(env, exports);
  exports.Set("hasNetfilter", Napi::Boolean::New(env, PlatformHasNetfilter()));
  exports.Set("hasRedirectIoctls", Napi::Boolean::New(env, PlatformHasRedirectIoctls()));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
  exports.Set("SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS",
              Napi::Number::New(env, kSioQueryRedirectRecords));
  exports.Set("SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT",
              Napi::Number::New(env, kSioQueryRedirectContext));
  exports.Set("SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS",
              Napi::Number::New(env, kSioSetRedirectRecords));
  exports.Set("MAX_BLOB_SIZE", Napi::Number::New(env, kMaxBlobSize));
  exports.Set("build", Napi::String::New(env, WFP_REDIRECT_BUILD));
  return exports;
}

}  // namespace

NODE_API_MODULE(wfp_redirect, Init)
