// Everywhere but Windows: the IOCTLs do not exist. The addon still builds and
// loads, so the socket lookup and the argument checks work and are tested.
#include "../redirect_ioctl.h"

namespace wfp {

bool PlatformHasRedirectIoctls() { return false; }

Outcome QueryRedirectBlob(OsSocket, uint32_t, BlobSink, void*) {
  return {Status::kUnsupportedPlatform, 0, 0};
}

Outcome SetRedirectRecords(OsSocket, const uint8_t*, size_t) {
  return {Status::kUnsupportedPlatform, 0, 0};
}

}  // namespace wfp
