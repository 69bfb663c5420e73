#include "js_errors.h"

#include <uv.h>

#include "wsa_errors.h"

namespace wfp {
namespace {

struct ErrorClassSlot {
  Napi::FunctionReference error_class;
};

}  // namespace

void InitErrorClassSlot(Napi::Env env) { env.SetInstanceData(new ErrorClassSlot()); }

void ThrowWfpError(Napi::Env env, const std::string& code,
                   const std::string& message, Napi::Object fields) {
  fields.Set("code", code);
  ErrorClassSlot* data = env.GetInstanceData<ErrorClassSlot>();
  if (data != nullptr && !data->error_class.IsEmpty()) {
    Napi::Value error = data->error_class.New(
        {Napi::String::New(env, message), fields});
    if (!env.IsExceptionPending()) napi_throw(env, error);
    return;
  }
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object object = error.Value();
  for (const char* key : {"code", "errno", "syscall", "ioctl"}) {
    if (fields.Has(key)) object.Set(key, fields.Get(key));
  }
  error.ThrowAsJavaScriptException();
}

void ThrowFailure(Napi::Env env, const Outcome& outcome, uint32_t ioctl) {
  const FailureReport report = DescribeFailure(outcome, ioctl);
  if (report.is_range_error) {
    Napi::RangeError error = Napi::RangeError::New(env, report.message);
    error.Set("code", report.code);
    error.ThrowAsJavaScriptException();
    return;
  }
  Napi::Object fields = Napi::Object::New(env);
  if (report.has_errno) fields.Set("errno", report.errno_value);
  // `syscall` only where WSAIoctl was called and its answer is the failure;
  // not where no call was made, nor for this process's own allocation.
  const bool call_failed = outcome.status == Status::kSystemError ||
                           outcome.status == Status::kBlobTooLarge ||
                           outcome.status == Status::kBlobUnstable ||
                           outcome.status == Status::kBadBytesReturned;
  if (call_failed) fields.Set("syscall", "WSAIoctl");
  fields.Set("ioctl", IoctlName(ioctl));
  ThrowWfpError(env, report.code, report.message, fields);
}

void ThrowSystemError(Napi::Env env, int os_error, const char* syscall,
                      const std::string& call, const char* consequence) {
  const char* name = uv_err_name(uv_translate_sys_error(os_error));
  Napi::Object fields = Napi::Object::New(env);
  fields.Set("errno", os_error);
  fields.Set("syscall", syscall);
  std::string message = call + " failed with " + name;
  if (consequence != nullptr) message += std::string(": ") + consequence;
  ThrowWfpError(env, name, message, fields);
}

void ThrowArgumentError(Napi::Env env, bool is_type_error,
                        const std::string& message) {
  if (is_type_error) {
    Napi::TypeError error = Napi::TypeError::New(env, message);
    error.Set("code", "ERR_INVALID_ARG_TYPE");
    error.ThrowAsJavaScriptException();
  } else {
    Napi::RangeError error = Napi::RangeError::New(env, message);
    error.Set("code", "ERR_OUT_OF_RANGE");
    error.ThrowAsJavaScriptException();
  }
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) {
    ThrowArgumentError(env, true, "Expected the WfpRedirectError class");
    return env.Undefined();
  }
  env.GetInstanceData<ErrorClassSlot>()->error_class =
      Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

}  // namespace wfp
