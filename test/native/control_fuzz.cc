// native/control_messages.h under AddressSanitizer and UBSan (run by
// test/conformance-asan.test.ts): 20,000 control areas, fixed seed, each in a
// heap block of exactly its length, some well-formed (built here by hand, not
// with the header's own writer), some cut short, some random bytes, some with
// one length field corrupted. Every message the parser reports must lie inside
// the area; a well-formed area must come back exactly as built; any read past
// the block aborts the run.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "control_messages.h"

namespace {

struct Built {
  int32_t level;
  int32_t type;
  std::vector<uint8_t> data;
};

// The documented layout, written independently: size_t length (header +
// data), int32 level, int32 type, data, padding to a multiple of size_t.
std::vector<uint8_t> Layout(const std::vector<Built>& messages) {
  std::vector<uint8_t> area;
  for (const Built& message : messages) {
    const size_t header = (sizeof(size_t) + 8 + sizeof(size_t) - 1) / sizeof(size_t) * sizeof(size_t);
    const size_t length = header + message.data.size();
    const size_t start = area.size();
    area.resize(start + (length + sizeof(size_t) - 1) / sizeof(size_t) * sizeof(size_t), 0);
    std::memcpy(&area[start], &length, sizeof length);
    std::memcpy(&area[start + sizeof(size_t)], &message.level, 4);
    std::memcpy(&area[start + sizeof(size_t) + 4], &message.type, 4);
    if (!message.data.empty()) std::memcpy(&area[start + header], message.data.data(), message.data.size());
  }
  return area;
}

int failures = 0;

void Fail(int run, const char* what) {
  std::fprintf(stderr, "control_fuzz: run %d: %s\n", run, what);
  ++failures;
}

}  // namespace

int main() {
  srandom(20261123);
  const int kRuns = 20000;
  int well_formed = 0, malformed = 0;
  for (int run = 0; run < kRuns; ++run) {
    std::vector<Built> messages(random() % 4);
    for (Built& message : messages) {
      message.level = static_cast<int32_t>(random() % 50);
      message.type = static_cast<int32_t>(random() % 100);
      message.data.resize(random() % 3 == 0 ? random() % 70000 : random() % 40);
      for (uint8_t& byte : message.data) byte = static_cast<uint8_t>(random());
    }
    std::vector<uint8_t> area = Layout(messages);
    const int kind = static_cast<int>(random() % 4);
    if (kind == 1 && !area.empty()) area.resize(random() % area.size());  // cut short
    if (kind == 2) {                                                        // random bytes
      area.resize(random() % 200);
      for (uint8_t& byte : area) byte = static_cast<uint8_t>(random());
    }
    if (kind == 3 && area.size() >= sizeof(size_t)) {  // one length corrupted
      size_t bad = static_cast<size_t>(random()) * (random() % 2 ? 1 : 0x10001);
      std::memcpy(&area[0], &bad, sizeof bad);
    }
    // Exactly the area's bytes on the heap: a read past them is a sanitizer report.
    uint8_t* block = static_cast<uint8_t*>(std::malloc(area.empty() ? 1 : area.size()));
    if (!area.empty()) std::memcpy(block, area.data(), area.size());
    std::vector<Built> seen;
    const size_t bad = wfp::ForEachControlMessage(block, area.size(), [&](const wfp::ControlMessage& message) {
      if (message.data < block || message.data + message.size > block + area.size()) Fail(run, "a message outside the area");
      seen.push_back({message.level, message.type, std::vector<uint8_t>(message.data, message.data + message.size)});
    });
    if (kind == 0) {
      ++well_formed;
      if (bad != 0) Fail(run, "a well-formed area reported malformed");
      if (seen.size() != messages.size()) Fail(run, "a well-formed area lost or gained messages");
      for (size_t i = 0; i < seen.size() && i < messages.size(); ++i) {
        if (seen[i].level != messages[i].level || seen[i].type != messages[i].type || seen[i].data != messages[i].data) {
          Fail(run, "a message came back different");
        }
      }
    } else {
      malformed += static_cast<int>(bad);
    }
    std::free(block);
  }
  std::printf("control_fuzz: %d areas, %d well-formed read back exactly, %d malformed stopped at, no sanitizer report\n", kRuns,
              well_formed, malformed);
  return failures == 0 && well_formed > 1000 && malformed > 1000 ? 0 : 1;
}
