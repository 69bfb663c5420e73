// The control messages of a received msghdr on POSIX, walked with the
// system's own CMSG_FIRSTHDR / CMSG_NXTHDR / CMSG_DATA, so the platform's
// cmsghdr layout and alignment (a 12-byte header on macOS, a size_t-long one
// on Linux) need no assumption here. Windows' WSACMSGHDR has no such macros
// that bound-check, and keeps the hand-written parser (control_messages.h).
#ifndef WFP_REDIRECT_POSIX_RECEIVED_CONTROL_H_
#define WFP_REDIRECT_POSIX_RECEIVED_CONTROL_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "../control_messages.h"

namespace wfp {

// Calls visit(const ControlMessage&) for each message in
// msg_control[0, msg_controllen). The macros promise that a header fits, not
// that its length does: each message's length is checked against the area
// before its data is read. A length that is shorter than the header, runs past
// the area, or leaves a header's worth of bytes unwalked ends the walk and
// returns 1 (as ForEachControlMessage does); otherwise 0.
template <typename Visit>
size_t ForEachReceivedControlMessage(msghdr& message, Visit visit) {
  const uint8_t* start = static_cast<const uint8_t*>(message.msg_control);
  const size_t length = message.msg_controllen;
  size_t walked = 0;  // where the last good message's room ends
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
    const uint8_t* at = reinterpret_cast<const uint8_t*>(header);
    const size_t offset = static_cast<size_t>(at - start);
    const size_t header_size = static_cast<size_t>(CMSG_DATA(header) - at);
    if (offset > length || header->cmsg_len < header_size || header->cmsg_len > length - offset) return 1;
    const size_t size = header->cmsg_len - header_size;
    visit(ControlMessage{header->cmsg_level, header->cmsg_type, CMSG_DATA(header), size});
    walked = offset + CMSG_SPACE(size);
  }
  // CMSG_NXTHDR also ends the walk at a next message whose length runs past
  // the area (glibc): a header's worth left over says one was there.
  return walked < length && length - walked >= sizeof(cmsghdr) ? 1 : 0;
}

}  // namespace wfp

#endif  // WFP_REDIRECT_POSIX_RECEIVED_CONTROL_H_
