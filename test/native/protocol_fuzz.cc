// Fuzzes native/redirect_protocol.h with 10,000 random provider scripts (fixed
// seed), built with AddressSanitizer and UBSan by test/conformance-asan.test.ts:
// every run must end in exactly the scripted blob or a described failure,
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
constexpr int kHardErrors[] = {995, 997, 10004, 10014, 10036, 10038, 10042, 10045, 10050, 10057, 12345};

[[noreturn]] void Fail(int run, const char* what) {
  std::fprintf(stderr, "protocol_fuzz: run %d: %s\n", run, what);
  std::exit(1);
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

    const auto& calls = provider.calls();
    if (calls.empty() || calls.size() > static_cast<size_t>(wfp::kMaxQueryAttempts)) Fail(run, "call count out of bounds");
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].out_size > wfp::kMaxBlobSize) Fail(run, "asked for more than the cap");
      if (i > 0 && calls[i].out_size <= calls[i - 1].out_size) Fail(run, "buffer did not grow");
    }
    if (outcome.status == wfp::Status::kOk) {
      ++blobs;
      if (sink_calls != 1) Fail(run, "sink not called exactly once");
      const ScriptStep& answer = script[calls.size() - 1];
      const uint32_t out_size = calls.back().out_size;
      if (answer.rc != 0 || answer.bytes_returned > out_size) Fail(run, "accepted a failed or overlong answer");
      std::vector<uint8_t> expected(answer.bytes_returned, 0);
      for (uint32_t j = 0; j < answer.bytes_returned && j < answer.data.size(); ++j) expected[j] = answer.data[j];
      if (result != expected) Fail(run, "returned bytes differ from the scripted blob");
    } else {
      ++failures;
      if (sink_calls != 0) Fail(run, "sink called on failure");
      if (wfp::DescribeFailure(outcome, wfp::kSioQueryRedirectRecords).code.empty()) Fail(run, "undescribed failure");
    }
  }
  std::printf("protocol_fuzz: %d scripts, %d blobs, %d typed failures, no sanitizer report\n", kRuns, blobs, failures);
  return blobs > 1000 && failures > 1000 ? 0 : 1;
}
