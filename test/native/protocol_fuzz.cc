// Fuzzes native/redirect_protocol.h with 10,000 random provider scripts (fixed
// seed), built with AddressSanitizer and UBSan by test/conformance-asan.test.ts.
// Each run is checked against a model of the documented protocol written here
// from the documentation's rules, with its own constants (README, "How a
// query reads a blob"): the same buffer sizes asked for, and the same outcome
// (exactly the scripted blob, or the status and error the script implies),
// with no read or write outside a buffer. Exit code 0 and a summary line on
// success; a message and exit code 1 on the first broken invariant.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "redirect_protocol.h"
#include "scripted_provider.h"
#include "wsa_errors.h"

using wfp::testing::ScriptedProvider;
using wfp::testing::ScriptStep;

namespace {

constexpr int kRuns = 10000;
// The documented limits, not the header's constants, so that a wrong
// constant in the header is caught too.
constexpr uint32_t kDocumentedFirstSize = 1024;
constexpr uint32_t kDocumentedCap = 64 * 1024;
constexpr int kDocumentedAttempts = 10;
constexpr int kInsufficientBuffer = 122;  // ERROR_INSUFFICIENT_BUFFER
constexpr int kFault = 10014;             // WSAEFAULT
constexpr int kInval = 10022;             // WSAEINVAL
constexpr int kHardErrors[] = {995, 997, 10004, 10014, 10036, 10038, 10042, 10045, 10050, 10057, 12345};

[[noreturn]] void Fail(int run, const char* what) {
  std::fprintf(stderr, "protocol_fuzz: run %d: %s\n", run, what);
  std::exit(1);
}

struct Expected {
  std::vector<uint32_t> sizes;  // the buffer size of each call
  wfp::Status status;
  int error;                  // for failures: the provider's error the outcome carries
  std::vector<uint8_t> blob;  // for kOk
};

// What the documented protocol asks for and ends in, given the script.
Expected Model(const std::vector<ScriptStep>& script) {
  Expected expected{{}, wfp::Status::kBlobUnstable, 0, {}};
  uint32_t size = kDocumentedFirstSize;
  int error = 0;
  for (int attempt = 0; attempt < kDocumentedAttempts; ++attempt) {
    expected.sizes.push_back(size);
    const bool scripted = static_cast<size_t>(attempt) < script.size();
    const ScriptStep* step = scripted ? &script[attempt] : nullptr;
    const uint32_t returned = step ? step->bytes_returned : 0;
    error = step ? step->error : wfp::testing::kScriptExhausted;
    if (step && step->rc == 0) {
      if (returned > size) {
        expected.status = wfp::Status::kBadBytesReturned;
        expected.error = 0;
        return expected;
      }
      // Zeroed scratch, then what the provider wrote (cut to the buffer).
      expected.blob.assign(returned, 0);
      for (uint32_t j = 0; j < returned && j < step->data.size(); ++j) expected.blob[j] = step->data[j];
      expected.status = wfp::Status::kOk;
      return expected;
    }
    uint32_t next = 0;
    if (error == kInsufficientBuffer) {
      next = returned > size ? returned : size * 2;
    } else if (error == kFault) {
      next = returned > size ? returned : 0;
    } else if (error == kInval) {
      // Size-less WSAEINVAL: straight to the cap, whose WSAEINVAL is final.
      next = returned > size ? returned : returned != 0 ? 0 : size < kDocumentedCap ? kDocumentedCap : size * 2;
    }
    expected.error = error;
    if (next == 0) {
      expected.status = wfp::Status::kSystemError;
      return expected;
    }
    if (next > kDocumentedCap) {
      expected.status = error == kInval && returned == 0 ? wfp::Status::kSystemError : wfp::Status::kBlobTooLarge;
      return expected;
    }
    size = next;
  }
  expected.error = error;
  return expected;
}

}  // namespace

int main() {
  std::mt19937 random(0x5eed);
  auto below = [&](uint32_t n) { return static_cast<uint32_t>(random() % n); };
  auto some_size = [&]() -> uint32_t {
    switch (below(5)) {
      case 0: return below(64);
      case 1: case 2: return below(1100);
      case 3: return below(9000);
      default: return below(80000);
    }
  };
  int blobs = 0, failures = 0;

  for (int run = 0; run < kRuns; ++run) {
    std::vector<ScriptStep> steps;
    uint32_t size = some_size();
    const uint32_t length = 1 + below(14);
    for (uint32_t i = 0; i < length; ++i) {
      ScriptStep step{};
      switch (below(10)) {
        case 0: case 1: case 2:  // the blob, consistent
          step.data.resize(size);
          for (uint32_t j = 0; j < size; ++j) step.data[j] = static_cast<uint8_t>(j * 7 + run);
          step.bytes_returned = size;
          break;
        case 3: case 4:
          step = {-1, wfp::kErrorInsufficientBuffer, below(2) ? size : 0, {}};
          break;
        case 5:
          step = {-1, wfp::kWsaEInval, 0, {}};
          break;
        case 6:
          step = {-1, wfp::kWsaEFault, below(2) ? size : 0, {}};
          break;
        case 7:  // the blob grows
          size += below(3000);
          step = {-1, wfp::kErrorInsufficientBuffer, size, {}};
          break;
        case 8:
          step = {-1, kHardErrors[below(sizeof kHardErrors / sizeof kHardErrors[0])], below(100), {}};
          break;
        default:  // a provider that lies about what it wrote
          step.data.resize(below(100), 0xab);
          step.bytes_returned = below(90000);
          break;
      }
      steps.push_back(step);
    }
    const std::vector<ScriptStep> script = steps;
    ScriptedProvider provider(std::move(steps));
    std::vector<uint8_t> result;
    int sink_calls = 0;
    const wfp::Outcome outcome = wfp::QueryBlob(
        provider, wfp::kSioQueryRedirectRecords,
        [&](const uint8_t* data, uint32_t n) {
          ++sink_calls;
          result.assign(data, data + n);  // ASan checks every byte read here
        });

    const Expected expected = Model(script);
    const auto& calls = provider.calls();
    if (calls.size() != expected.sizes.size()) Fail(run, "a different number of calls than the protocol makes");
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].out_size != expected.sizes[i]) Fail(run, "a different buffer size than the protocol asks for");
    }
    if (outcome.status != expected.status) Fail(run, "a different outcome than the script implies");
    if (outcome.status == wfp::Status::kOk) {
      ++blobs;
      if (sink_calls != 1) Fail(run, "sink not called exactly once");
      if (result != expected.blob) Fail(run, "returned bytes differ from the scripted blob");
    } else {
      ++failures;
      if (sink_calls != 0) Fail(run, "sink called on failure");
      if (outcome.status != wfp::Status::kBadBytesReturned && outcome.error != expected.error) {
        Fail(run, "a different error than the provider's");
      }
      if (wfp::DescribeFailure(outcome, wfp::kSioQueryRedirectRecords).code.empty()) Fail(run, "undescribed failure");
    }
  }
  std::printf("protocol_fuzz: %d scripts, %d blobs, %d typed failures, no sanitizer report\n", kRuns, blobs, failures);
  return blobs > 1000 && failures > 1000 ? 0 : 1;
}
