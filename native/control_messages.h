// Control messages (ancillary data) of WSARecvMsg / WSASendMsg, read and
// written with strict bounds, in the layout of 64-bit Windows' WSACMSGHDR: a
// size_t length that counts the header, the level, the type, then the data,
// each message starting at a multiple of sizeof(size_t). native/win/
// udp_socket.cc static_asserts that its headers agree; the parser is fuzzed
// under ASan on Linux (test/native/control_fuzz.cc). POSIX walks its own
// cmsghdr with the system's CMSG_* macros instead (posix/received_control.h),
// which share only ControlMessage with this file.
#ifndef WFP_REDIRECT_CONTROL_MESSAGES_H_
#define WFP_REDIRECT_CONTROL_MESSAGES_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace wfp {

struct ControlHeader {
  size_t length;  // header + data, without the padding after the data
  int32_t level;
  int32_t type;
};

constexpr size_t kControlAlign = sizeof(size_t);
constexpr size_t AlignControl(size_t size) {
  return (size + kControlAlign - 1) & ~(kControlAlign - 1);
}
constexpr size_t kControlHeaderSize = AlignControl(sizeof(ControlHeader));
// The room one message with `size` bytes of data takes (CMSG_SPACE).
constexpr size_t ControlSpace(size_t size) {
  return kControlHeaderSize + AlignControl(size);
}

struct ControlMessage {
  int32_t level;
  int32_t type;
  const uint8_t* data;
  size_t size;
};

// Calls visit(const ControlMessage&) for each well-formed message in
// buffer[0, length). Stops at the first malformed one (a header that does not
// fit, a length shorter than the header, or data past the end) and returns 1
// for it, else 0: nothing past `length` is ever read.
template <typename Visit>
size_t ForEachControlMessage(const uint8_t* buffer, size_t length, Visit visit) {
  size_t offset = 0;
  while (offset < length) {
    if (length - offset < sizeof(ControlHeader)) return 1;
    ControlHeader header;
    std::memcpy(&header, buffer + offset, sizeof header);  // may be unaligned
    if (header.length < kControlHeaderSize || header.length > length - offset) {
      return 1;
    }
    visit(ControlMessage{header.level, header.type, buffer + offset + kControlHeaderSize,
                         header.length - kControlHeaderSize});
    const size_t step = AlignControl(header.length);
    if (step < header.length || step >= length - offset) break;  // the last one
    offset += step;
  }
  return 0;
}

// Appends one message at *used; false (and nothing written) when it does not
// fit in `capacity`.
inline bool AppendControlMessage(uint8_t* buffer, size_t capacity, size_t* used,
                                 int32_t level, int32_t type,
                                 const uint8_t* data, size_t size) {
  if (*used > capacity || size > capacity ||
      ControlSpace(size) > capacity - *used) {
    return false;
  }
  uint8_t* at = buffer + *used;
  std::memset(at, 0, ControlSpace(size));
  const ControlHeader header{kControlHeaderSize + size, level, type};
  std::memcpy(at, &header, sizeof header);
  if (size > 0) std::memcpy(at + kControlHeaderSize, data, size);
  *used += ControlSpace(size);
  return true;
}

}  // namespace wfp

#endif  // WFP_REDIRECT_CONTROL_MESSAGES_H_
