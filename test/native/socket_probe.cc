#include "socket_probe.h"

#include <uv.h>

#include <string>

#include "js_errors.h"
#include "os_socket.h"
#include "socket_lookup.h"

namespace wfp {
namespace testing {
namespace {

// Test callers pass sockets they got from the package: only the type is checked.
bool ReadSocketArgument(const Napi::CallbackInfo& info, OsSocket* out) {
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0) {
    ThrowArgumentError(info.Env(), true, "The OS socket must be a number from 0");
    return false;
  }
  *out = static_cast<OsSocket>(info[0].As<Napi::Number>().Int64Value());
  return true;
}

Napi::Value DescribeSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OsSocket socket;
  if (!ReadSocketArgument(info, &socket)) return env.Undefined();
  Endpoint local, peer;
  if (!ReadSocketEndpoint(socket, EndpointSide::kLocal, &local) ||
      !ReadSocketEndpoint(socket, EndpointSide::kPeer, &peer)) {
    ThrowWfpError(env, "ERR_WFP_SOCKET_NOT_FOUND",
                  "The OS socket has no local and peer IP address: it is not "
                  "a connected TCP socket, or it is closed",
                  Napi::Object::New(env));
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("localAddress", FormatAddress(local));
  result.Set("localPort", local.port);
  result.Set("localScope", local.scope_id);
  result.Set("remoteAddress", FormatAddress(peer));
  result.Set("remotePort", peer.port);
  result.Set("remoteScope", peer.scope_id);
  return result;
}

Napi::Value DescribeLocal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OsSocket socket;
  if (!ReadSocketArgument(info, &socket)) return env.Undefined();
  Endpoint local;
  if (!ReadSocketEndpoint(socket, EndpointSide::kLocal, &local)) {
    ThrowWfpError(env, "ERR_WFP_SOCKET_NOT_FOUND",
                  "The OS socket has no local IP address: it is closed, or not an IP socket",
                  Napi::Object::New(env));
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("address", FormatAddress(local));
  result.Set("port", local.port);
  return result;
}

Napi::Value FindTcpSocketFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Endpoint local, peer;
  if (!info[0].IsString() || !info[1].IsNumber() || !info[2].IsString() || !info[3].IsNumber() ||
      !ParseEndpoint(info[0].As<Napi::String>(), info[1].As<Napi::Number>().DoubleValue(), &local) ||
      !ParseEndpoint(info[2].As<Napi::String>(), info[3].As<Napi::Number>().DoubleValue(), &peer)) {
    ThrowArgumentError(env, true, "Expected (localAddress, localPort, remoteAddress, remotePort)");
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    ThrowWfpError(env, "ERR_WFP_SOCKET_NOT_FOUND", "No event loop", Napi::Object::New(env));
    return env.Undefined();
  }
  OsSocket socket = 0;
  LookupStats stats{0, 0, false};
  const bool found = FindTcpSocket(loop, local, peer, &socket, &stats);
  Napi::Object result = Napi::Object::New(env);
  result.Set("socket", found ? Napi::Value(Napi::Number::New(env, static_cast<double>(socket))) : env.Null());
  result.Set("handlesVisited", static_cast<double>(stats.handles_visited));
  result.Set("socketsChecked", static_cast<double>(stats.sockets_checked));
  result.Set("usedFullWalk", stats.used_full_walk);
  return result;
}

}  // namespace

void AddSocketProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("describeSocket", Napi::Function::New(env, DescribeSocket));
  exports.Set("describeLocal", Napi::Function::New(env, DescribeLocal));
  exports.Set("findTcpSocket", Napi::Function::New(env, FindTcpSocketFn));
}

}  // namespace testing
}  // namespace wfp
