// Windows and the BSDs: no netfilter. (On Windows the original destination
// comes from the WFP redirect context, in lib/original-destination.ts.)
#include "../original_destination.h"

namespace wfp {

bool PlatformHasNetfilter() { return false; }

OriginalDestinationResult QueryOriginalDestination(OsSocket, Endpoint*, int* error) {
  *error = 0;
  return OriginalDestinationResult::kNoRecord;
}

}  // namespace wfp
