#ifndef WFP_BENCH_RAW_IOCTL_H_
#define WFP_BENCH_RAW_IOCTL_H_

#include <cstdint>

namespace wfp_bench {

bool HasRawIoctl();
// Calls WSAIoctl(SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS) `iterations` times.
void RawIoctlLoop(uint64_t socket, int64_t iterations);

}  // namespace wfp_bench

#endif  // WFP_BENCH_RAW_IOCTL_H_
