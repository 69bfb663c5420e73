// The WFP redirect IOCTLs through Winsock.
//
// No OVERLAPPED is ever passed: libuv owns the socket's completion port, and
// these IOCTLs are in-kernel queries that complete at once, so a plain
// blocking call on the JS thread is both correct and the cheapest.
#include <winsock2.h>

#include "../redirect_ioctl.h"

namespace wfp {
namespace {

class WinsockProvider {
 public:
  explicit WinsockProvider(SOCKET socket) : socket_(socket) {}

  int Ioctl(uint32_t code, const void* in, uint32_t in_size, void* out,
            uint32_t out_size, uint32_t* bytes_returned) {
    DWORD returned = 0;
    const int rc = WSAIoctl(socket_, code, const_cast<void*>(in), in_size, out,
                            out_size, &returned, nullptr, nullptr);
    *bytes_returned = returned;
    return rc;
  }

  int LastError() { return WSAGetLastError(); }

 private:
  SOCKET socket_;
};

}  // namespace

bool PlatformHasRedirectIoctls() { return true; }

Outcome QueryRedirectBlob(OsSocket socket, uint32_t code, BlobSink sink,
                          void* sink_context) {
  WinsockProvider provider(static_cast<SOCKET>(socket));
  return QueryBlob(provider, code,
                   [&](const uint8_t* data, uint32_t size) {
                     sink(sink_context, data, size);
                   });
}

Outcome SetRedirectRecords(OsSocket socket, const uint8_t* records,
                           size_t size) {
  WinsockProvider provider(static_cast<SOCKET>(socket));
  return SetBlob(provider, kSioSetRedirectRecords, records, size);
}

}  // namespace wfp
