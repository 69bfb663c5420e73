// wfp_conformance.node, a test-only addon: the production buffer protocol
// (native/redirect_protocol.h) and error mapping (native/wsa_errors.cc,
// native/js_errors.cc) driven by a scripted provider instead of WSAIoctl.
//
//   query(ioctl, script)   -> { buffer?, error?, calls, exhausted }
//   set(records, script)   -> { error?, calls, exhausted }
// and the socket probe (socket_probe.h): diagnostics of the production
// lookup that the production addon does not export.
// A script is an array of { rc?, error?, bytesReturned?, data? } steps; rc
// defaults to 0 without an error and to -1 (SOCKET_ERROR) with one.
#include <napi.h>

#include <vector>

#include "js_errors.h"
#include "redirect_protocol.h"
#include "scripted_provider.h"
#include "socket_probe.h"

namespace {

using wfp::testing::RecordedCall;
using wfp::testing::ScriptedProvider;
using wfp::testing::ScriptStep;

uint32_t OptionalUint(Napi::Object step, const char* key, uint32_t fallback) {
  Napi::Value value = step.Get(key);
  return value.IsNumber() ? value.As<Napi::Number>().Uint32Value() : fallback;
}

bool ReadScript(Napi::Env env, Napi::Value value, std::vector<ScriptStep>* steps) {
  if (!value.IsArray()) {
    wfp::ThrowArgumentError(env, true, "The script must be an array of steps");
    return false;
  }
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    if (!item.IsObject()) {
      wfp::ThrowArgumentError(env, true, "Each step must be an object");
      return false;
    }
    Napi::Object step = item.As<Napi::Object>();
    ScriptStep parsed{};
    parsed.error = static_cast<int>(OptionalUint(step, "error", 0));
    parsed.rc = step.Get("rc").IsNumber() ? step.Get("rc").As<Napi::Number>().Int32Value()
                                          : (parsed.error != 0 ? -1 : 0);
    parsed.bytes_returned = OptionalUint(step, "bytesReturned", 0);
    Napi::Value data = step.Get("data");
    if (data.IsTypedArray()) {
      Napi::Uint8Array bytes = data.As<Napi::Uint8Array>();
      parsed.data.assign(bytes.Data(), bytes.Data() + bytes.ByteLength());
    }
    steps->push_back(std::move(parsed));
  }
  return true;
}

Napi::Object Report(Napi::Env env, const ScriptedProvider& provider,
                    const wfp::Outcome& outcome, uint32_t ioctl) {
  Napi::Object report = Napi::Object::New(env);
  if (outcome.status != wfp::Status::kOk) {
    wfp::ThrowFailure(env, outcome, ioctl);
    report.Set("error", env.GetAndClearPendingException().Value());
  }
  Napi::Array calls = Napi::Array::New(env, provider.calls().size());
  for (size_t i = 0; i < provider.calls().size(); ++i) {
    const RecordedCall& call = provider.calls()[i];
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("code", call.code);
    entry.Set("in", call.in_null ? env.Null()
                                 : Napi::Buffer<uint8_t>::Copy(env, call.in.data(), call.in.size()).As<Napi::Value>());
    entry.Set("outNull", call.out_null);
    entry.Set("outSize", call.out_size);
    calls.Set(static_cast<uint32_t>(i), entry);
  }
  report.Set("calls", calls);
  report.Set("exhausted", provider.exhausted());
  return report;
}

Napi::Value Query(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<ScriptStep> steps;
  if (!info[0].IsNumber() || !ReadScript(env, info[1], &steps)) {
    if (!env.IsExceptionPending()) wfp::ThrowArgumentError(env, true, "query(ioctl, script)");
    return env.Undefined();
  }
  const uint32_t ioctl = info[0].As<Napi::Number>().Uint32Value();
  ScriptedProvider provider(std::move(steps));
  Napi::Value buffer = env.Undefined();
  // The same sink shape as the addon's: a fresh copy of the scratch bytes.
  const wfp::Outcome outcome = wfp::QueryBlob(provider, ioctl, [&](const uint8_t* data, uint32_t size) {
    buffer = Napi::Buffer<uint8_t>::Copy(env, data, size);
  });
  Napi::Object report = Report(env, provider, outcome, ioctl);
  if (outcome.status == wfp::Status::kOk) report.Set("buffer", buffer);
  return report;
}

Napi::Value Set(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<ScriptStep> steps;
  if (!info[0].IsTypedArray() || !ReadScript(env, info[1], &steps)) {
    if (!env.IsExceptionPending()) wfp::ThrowArgumentError(env, true, "set(records, script)");
    return env.Undefined();
  }
  Napi::Uint8Array records = info[0].As<Napi::Uint8Array>();
  ScriptedProvider provider(std::move(steps));
  const wfp::Outcome outcome = wfp::SetBlob(provider, wfp::kSioSetRedirectRecords, records.Data(),
                                            records.ByteLength());
  return Report(env, provider, outcome, wfp::kSioSetRedirectRecords);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  wfp::InitErrorClassSlot(env);
  exports.Set("query", Napi::Function::New(env, Query));
  exports.Set("set", Napi::Function::New(env, Set));
  exports.Set("setErrorClass", Napi::Function::New(env, wfp::SetErrorClass));
  wfp::testing::AddSocketProbe(env, exports);
  exports.Set("INITIAL_BLOB_SIZE", wfp::kInitialBlobSize);
  exports.Set("MAX_BLOB_SIZE", wfp::kMaxBlobSize);
  exports.Set("MAX_QUERY_ATTEMPTS", wfp::kMaxQueryAttempts);
  exports.Set("SCRIPT_EXHAUSTED", wfp::testing::kScriptExhausted);
  return exports;
}

}  // namespace

NODE_API_MODULE(wfp_conformance, Init)
