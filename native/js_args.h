// The checks at the JS boundary that more than one entry point makes: a raw
// OS socket number and a records buffer. Each throws (TypeError/RangeError
// with a code, or what CheckBlobToSet refuses) and returns false on bad input.
#ifndef WFP_REDIRECT_JS_ARGS_H_
#define WFP_REDIRECT_JS_ARGS_H_

#include <napi.h>

#include "redirect_ioctl.h"

namespace wfp {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

bool ReadOsSocket(const Napi::CallbackInfo& info, size_t index, OsSocket* out);
bool ReadRecords(const Napi::CallbackInfo& info, size_t index, Napi::Uint8Array* out);
// A socket mark: an integer from 0 to 2^32 - 1.
bool ReadMark(const Napi::CallbackInfo& info, size_t index, uint32_t* out);

}  // namespace wfp

#endif  // WFP_REDIRECT_JS_ARGS_H_
