// wfp_bench.node, for bench/ only: the floor and the physical limit the
// package's call overhead is measured against.
//   noop()                      a Node-API call that does nothing
//   rawIoctlLoop(socket, n)     n x WSAIoctl(SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS)
//                               in C on a 1 KiB stack buffer; returns the
//                               nanoseconds they took (Windows), or null
#include <napi.h>

#include <chrono>
#include <cstdint>

#include "bench_raw_ioctl.h"

namespace {

Napi::Value Noop(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

Napi::Value RawIoctlLoop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "rawIoctlLoop(socket, iterations)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const uint64_t socket = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
  const int64_t iterations = info[1].As<Napi::Number>().Int64Value();
  if (!wfp_bench::HasRawIoctl()) return env.Null();
  const auto start = std::chrono::steady_clock::now();
  wfp_bench::RawIoctlLoop(socket, iterations);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  return Napi::Number::New(env, static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("noop", Napi::Function::New(env, Noop));
  exports.Set("rawIoctlLoop", Napi::Function::New(env, RawIoctlLoop));
  return exports;
}

}  // namespace

NODE_API_MODULE(wfp_bench, Init)
