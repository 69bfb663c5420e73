// No WFP IOCTLs outside Windows: no physical limit to measure.
#include "bench_raw_ioctl.h"

namespace wfp_bench {

bool HasRawIoctl() { return false; }
void RawIoctlLoop(uint64_t, int64_t) {}

}  // namespace wfp_bench
