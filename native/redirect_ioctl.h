// The three WFP redirect IOCTLs on an OS socket. One implementation per
// platform: native/win/redirect_ioctl.cc calls Winsock, native/posix/ answers
// that the platform has no such IOCTLs.
#ifndef WFP_REDIRECT_IOCTL_H_
#define WFP_REDIRECT_IOCTL_H_

#include <cstddef>
#include <cstdint>

#include "redirect_protocol.h"

namespace wfp {

// A SOCKET on Windows, a file descriptor elsewhere.
using OsSocket = uint64_t;

// Receives the bytes of a successful query; they must be copied before it returns.
using BlobSink = void (*)(void* context, const uint8_t* data, uint32_t size);

// True where the build has the IOCTLs (Windows); the OS version is the JS layer's concern.
bool PlatformHasRedirectIoctls();

Outcome QueryRedirectBlob(OsSocket socket, uint32_t code, BlobSink sink,
                          void* sink_context);

Outcome SetRedirectRecords(OsSocket socket, const uint8_t* records,
                           size_t size);

}  // namespace wfp

#endif  // WFP_REDIRECT_IOCTL_H_
