#include "js_args.h"

#include <string>

#include "js_errors.h"
#include "os_socket.h"

namespace wfp {

// A raw OS socket passed as a JS number: an integer from 0 to this
// platform's kMaxOsSocket (a POSIX descriptor is an int: 2^32 + fd must not
// reach the OS as fd).
bool ReadOsSocket(const Napi::CallbackInfo& info, size_t index,
                  OsSocket* out) {
  Napi::Value value = info[index];
  if (!value.IsNumber()) {
    ThrowArgumentError(info.Env(), true, "The OS socket must be a number");
    return false;
  }
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= 0 && number <= static_cast<double>(kMaxOsSocket)) ||
      number != static_cast<double>(static_cast<uint64_t>(number))) {
    ThrowArgumentError(info.Env(), false,
                       "The OS socket must be an integer from 0 to " +
                           std::to_string(kMaxOsSocket) + ". Received " +
                           Napi::Value(value).ToString().Utf8Value());
    return false;
  }
  *out = static_cast<OsSocket>(number);
  return true;
}

// The records argument, checked once for every entry point: a Uint8Array
// (TypeError) whose size CheckBlobToSet accepts (RangeError). A detached
// buffer reports length 0 and is refused as empty.
bool ReadRecords(const Napi::CallbackInfo& info, size_t index,
                 Napi::Uint8Array* out) {
  Napi::Env env = info.Env();
  Napi::Value value = info[index];
  if (!value.IsTypedArray() ||
      value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowArgumentError(env, true, "The records must be a Uint8Array");
    return false;
  }
  *out = value.As<Napi::Uint8Array>();
  const Status checked = CheckBlobToSet(out->ByteLength());
  if (checked != Status::kOk) {
    ThrowFailure(env, {checked, 0, 0}, kSioSetRedirectRecords);
    return false;
  }
  return true;
}

bool ReadMark(const Napi::CallbackInfo& info, size_t index, uint32_t* out) {
  Napi::Value value = info[index];
  const double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
  if (!(number >= 0 && number <= 4294967295.0) || number != static_cast<double>(static_cast<uint32_t>(number))) {
    ThrowArgumentError(info.Env(), !value.IsNumber(), "The mark must be an integer from 0 to 4294967295");
    return false;
  }
  *out = static_cast<uint32_t>(number);
  return true;
}

}  // namespace wfp
