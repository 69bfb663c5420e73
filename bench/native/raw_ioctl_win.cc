#include <winsock2.h>

#include "bench_raw_ioctl.h"

namespace wfp_bench {

bool HasRawIoctl() { return true; }

void RawIoctlLoop(uint64_t socket, int64_t iterations) {
  char buffer[1024];
  DWORD returned = 0;
  for (int64_t i = 0; i < iterations; ++i) {
    WSAIoctl(static_cast<SOCKET>(socket), 0x980000DC, nullptr, 0, buffer, sizeof buffer, &returned, nullptr,
             nullptr);
    (void)WSAGetLastError();
  }
}

}  // namespace wfp_bench
