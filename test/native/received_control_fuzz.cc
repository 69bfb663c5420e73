// native/posix/received_control.h under AddressSanitizer and UBSan (run by
// test/received-control-asan.test.ts): 20,000 control areas, fixed seed, each
// in a heap block of exactly its length, walked as a received msghdr. Some are
// well-formed (built with the system's CMSG_* macros, as a sender builds
// them), some cut short, some random bytes, some with one length corrupted.
// Every message reported must lie inside the area; a well-formed area must
// come back exactly as built; any read past the block aborts the run.
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "posix/received_control.h"

namespace {

struct Built {
  int level;
  int type;
  std::vector<uint8_t> data;
};

// The area a sender would pass to sendmsg, made with CMSG_SPACE/LEN/DATA.
std::vector<uint8_t> Layout(const std::vector<Built>& messages) {
  size_t total = 0;
  for (const Built& message : messages) total += CMSG_SPACE(message.data.size());
  std::vector<uint8_t> area(total, 0);
  size_t offset = 0;
  for (const Built& message : messages) {
    cmsghdr header{};
    header.cmsg_len = CMSG_LEN(message.data.size());
    header.cmsg_level = message.level;
    header.cmsg_type = message.type;
    std::memcpy(&area[offset], &header, sizeof header);
    const size_t data_offset = CMSG_LEN(0);
    if (!message.data.empty()) std::memcpy(&area[offset + data_offset], message.data.data(), message.data.size());
    offset += CMSG_SPACE(message.data.size());
  }
  return area;
}

int failures = 0;

void Fail(int run, const char* what) {
  std::fprintf(stderr, "received_control_fuzz: run %d: %s\n", run, what);
  ++failures;
}

}  // namespace

int main() {
  srandom(20261201);
  const int kRuns = 20000;
  int well_formed = 0, malformed = 0;
  for (int run = 0; run < kRuns; ++run) {
    std::vector<Built> messages(random() % 4);
    for (Built& message : messages) {
      message.level = static_cast<int>(random() % 50);
      message.type = static_cast<int>(random() % 100);
      message.data.resize(random() % 3 == 0 ? random() % 3000 : random() % 40);
      for (uint8_t& byte : message.data) byte = static_cast<uint8_t>(random());
    }
    std::vector<uint8_t> area = Layout(messages);
    const int kind = static_cast<int>(random() % 4);
    if (kind == 1 && !area.empty()) area.resize(random() % area.size());  // cut short
    if (kind == 2) {                                                        // random bytes
      area.resize(random() % 200);
      for (uint8_t& byte : area) byte = static_cast<uint8_t>(random());
    }
    if (kind == 3 && area.size() >= sizeof(cmsghdr)) {  // one length corrupted
      cmsghdr header;
      std::memcpy(&header, &area[0], sizeof header);
      header.cmsg_len = static_cast<decltype(header.cmsg_len)>(static_cast<size_t>(random()) * (random() % 2 ? 1 : 0x10001));
      std::memcpy(&area[0], &header, sizeof header);
    }
    // Exactly the area's bytes on the heap, aligned as malloc aligns: a read
    // past them is a sanitizer report.
    uint8_t* block = static_cast<uint8_t*>(std::malloc(area.empty() ? 1 : area.size()));
    if (!area.empty()) std::memcpy(block, area.data(), area.size());
    msghdr message{};
    message.msg_control = block;
    message.msg_controllen = area.size();
    std::vector<Built> seen;
    const size_t bad = wfp::ForEachReceivedControlMessage(message, [&](const wfp::ControlMessage& control) {
      if (control.data < block || control.data + control.size > block + area.size()) Fail(run, "a message outside the area");
      seen.push_back({control.level, control.type, std::vector<uint8_t>(control.data, control.data + control.size)});
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
  std::printf("received_control_fuzz: %d areas, %d well-formed read back exactly, %d malformed stopped at, no sanitizer report\n",
              kRuns, well_formed, malformed);
  return failures == 0 && well_formed > 1000 && malformed > 1000 ? 0 : 1;
}
