// Failures as JS exceptions: WfpRedirectError (the class lib/ registers) for
// everything operational, TypeError/RangeError with a code for bad arguments.
// Shared by the addon and the conformance-test addon, so the tests see
// exactly the errors users see.
#ifndef WFP_REDIRECT_JS_ERRORS_H_
#define WFP_REDIRECT_JS_ERRORS_H_

#include <napi.h>

#include <string>

#include "redirect_protocol.h"

namespace wfp {

// Per-thread state: call once from the module's init.
void InitErrorClassSlot(Napi::Env env);

// setErrorClass(WfpRedirectError): lib/ registers the class it exports, once
// per thread that loads the addon.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info);

// Throws `new WfpRedirectError(message, fields + {code})`, or a plain Error
// with the same fields when no class was registered (raw binding use).
void ThrowWfpError(Napi::Env env, const std::string& code,
                   const std::string& message, Napi::Object fields);

// Throws what a failed outcome of an IOCTL means (DescribeFailure).
void ThrowFailure(Napi::Env env, const Outcome& outcome, uint32_t ioctl);

// Throws WfpRedirectError for a failed OS call: `code` is libuv's name of the
// error (EMFILE, EBADF, ...), `errno` the OS's number (errno, or WSA* on
// Windows). The message is "<call> failed with <code>[: <consequence>]".
void ThrowSystemError(Napi::Env env, int os_error, const char* syscall,
                      const std::string& call, const char* consequence);

// TypeError ERR_INVALID_ARG_TYPE, or RangeError ERR_OUT_OF_RANGE.
void ThrowArgumentError(Napi::Env env, bool is_type_error,
                        const std::string& message);

}  // namespace wfp

#endif  // WFP_REDIRECT_JS_ERRORS_H_
