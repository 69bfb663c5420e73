// A Winsock provider that answers from a script, for the conformance tests of
// native/redirect_protocol.h: each call to Ioctl takes the next step (rc,
// error, bytes returned, data written) and records what it was asked.
// Test-only: nothing of this is in the production addon.
#ifndef WFP_REDIRECT_SCRIPTED_PROVIDER_H_
#define WFP_REDIRECT_SCRIPTED_PROVIDER_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace wfp {
namespace testing {

struct ScriptStep {
  int rc;                     // 0, or -1 (SOCKET_ERROR)
  int error;                  // what LastError() answers after this call
  uint32_t bytes_returned;    // what *lpcbBytesReturned is set to
  std::vector<uint8_t> data;  // written to the output buffer, cut to its size
};

struct RecordedCall {
  uint32_t code;
  bool in_null;
  std::vector<uint8_t> in;  // a copy of the input buffer
  bool out_null;
  uint32_t out_size;
};

// The error the provider answers once the script has no step left.
constexpr int kScriptExhausted = 0x7ffffff0;

class ScriptedProvider {
 public:
  explicit ScriptedProvider(std::vector<ScriptStep> steps)
      : steps_(std::move(steps)) {}

  int Ioctl(uint32_t code, const void* in, uint32_t in_size, void* out,
            uint32_t out_size, uint32_t* bytes_returned) {
    RecordedCall call{code, in == nullptr, {}, out == nullptr, out_size};
    if (in != nullptr) {
      const uint8_t* bytes = static_cast<const uint8_t*>(in);
      call.in.assign(bytes, bytes + in_size);
    }
    calls_.push_back(std::move(call));
    if (next_ >= steps_.size()) {
      exhausted_ = true;
      last_error_ = kScriptExhausted;
      *bytes_returned = 0;
      return -1;
    }
    const ScriptStep& step = steps_[next_++];
    const size_t written = std::min<size_t>(step.data.size(), out_size);
    if (out != nullptr && written > 0) std::memcpy(out, step.data.data(), written);
    *bytes_returned = step.bytes_returned;
    last_error_ = step.error;
    return step.rc;
  }

  int LastError() const { return last_error_; }

  const std::vector<RecordedCall>& calls() const { return calls_; }
  bool exhausted() const { return exhausted_; }

 private:
  std::vector<ScriptStep> steps_;
  std::vector<RecordedCall> calls_;
  size_t next_ = 0;
  int last_error_ = 0;
  bool exhausted_ = false;
};

}  // namespace testing
}  // namespace wfp

#endif  // WFP_REDIRECT_SCRIPTED_PROVIDER_H_
