#include "wsa_errors.h"

#include <cstdarg>
#include <cstdio>

namespace wfp {
namespace {

struct SystemError {
  int code;
  const char* name;
  const char* meaning;
};

// Every code in the error tables of the query IOCTLs' documentation, plus the
// few Winsock codes a call on a stale or foreign handle produces.
constexpr SystemError kSystemErrors[] = {
    {kErrorInsufficientBuffer, "ERROR_INSUFFICIENT_BUFFER",
     "the provider found the buffer too small and reported no usable size"},
    {995, "WSA_OPERATION_ABORTED",
     "the operation was aborted, usually because the socket was closed while "
     "the call ran"},
    {997, "WSA_IO_PENDING",
     "the provider started an overlapped operation although none was "
     "requested, so no result is available"},
    {10004, "WSAEINTR", "a blocking call was interrupted; try again"},
    {10009, "WSAEBADF", "the handle is not valid"},
    {10013, "WSAEACCES", "access was denied"},
    {kWsaEFault, "WSAEFAULT",
     "the provider rejected a buffer as outside valid memory and reported no "
     "size to retry with"},
    {kWsaEInval, "WSAEINVAL", nullptr},  // meaning depends on the IOCTL
    {10024, "WSAEMFILE", "no more sockets are available"},
    {10035, "WSAEWOULDBLOCK", "the operation would block"},
    {10036, "WSAEINPROGRESS",
     "a blocking Winsock call is in progress on this thread; try again"},
    {10038, "WSAENOTSOCK",
     "the handle is not an open socket: it was closed, or the number is not "
     "a SOCKET"},
    {10042, "WSAENOPROTOOPT",
     "the provider does not support this IOCTL for the socket's protocol; "
     "the socket is probably not TCP/IP"},
    {10045, "WSAEOPNOTSUPP",
     "the transport provider does not support this IOCTL: it needs Windows 8 "
     "or Windows Server 2012 or later and the Microsoft TCP/IP provider "
     "(Wine and some layered providers lack it)"},
    {10050, "WSAENETDOWN", "the network subsystem has failed"},
    {10055, "WSAENOBUFS", "the system ran out of buffer space"},
    {10057, "WSAENOTCONN", "the socket is not connected"},
    {10093, "WSANOTINITIALISED", "Winsock is not initialised in this process"},
    // WFP's HRESULTs, as WSAGetLastError() carries them after these IOCTLs.
    {kFwpENotFound, "FWP_E_NOT_FOUND", nullptr},  // meaning depends on the IOCTL
};

// winerror.h's FACILITY_FWP (0x32) in a failure HRESULT: 0x8032xxxx.
bool IsFwpHresult(int code) {
  return (static_cast<uint32_t>(code) & 0xFFFF0000u) == 0x80320000u;
}

const SystemError* FindSystemError(int code) {
  for (const SystemError& entry : kSystemErrors) {
    if (entry.code == code) return &entry;
  }
  return nullptr;
}

const char* NotFoundMeaning(uint32_t ioctl) {
  if (ioctl == kSioQueryRedirectContext) {
    return "the connection was redirected, but its callout driver stored no "
           "redirect context (WFPSampler's helper reads this answer so), so "
           "its original destination is not in it";
  }
  return "WFP holds no such object for this socket: it was probably not "
         "redirected by a WFP callout at the ALE_CONNECT_REDIRECT layer";
}

const char* InvalidMeaning(uint32_t ioctl) {
  if (ioctl == kSioSetRedirectRecords) {
    return "the records were refused: pass the exact bytes "
           "queryRedirectRecords returned, on a TCP socket that has not "
           "connected yet";
  }
  return "the socket carries no WFP redirect data: it was probably not "
         "redirected to this process by a WFP callout at the "
         "ALE_CONNECT_REDIRECT layer, or it is not a TCP socket";
}

// What a code without a fixed meaning in the table means for this IOCTL.
const char* MeaningFor(int code, uint32_t ioctl) {
  if (code == kFwpENotFound) return NotFoundMeaning(ioctl);
  return InvalidMeaning(ioctl);
}

std::string Format(const char* format, ...) {
  char text[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  return text;
}

}  // namespace

std::string IoctlName(uint32_t code) {
  switch (code) {
    case kSioQueryRedirectRecords:
      return "SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS";
    case kSioQueryRedirectContext:
      return "SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT";
    case kSioSetRedirectRecords:
      return "SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS";
    default:
      return Format("IOCTL 0x%08X", static_cast<unsigned>(code));
  }
}

const char* SystemErrorName(int error) {
  const SystemError* entry = FindSystemError(error);
  return entry ? entry->name : nullptr;
}

FailureReport DescribeFailure(const Outcome& outcome, uint32_t ioctl) {
  const std::string op = IoctlName(ioctl);
  const char* what = op.c_str();
  const unsigned cap = kMaxBlobSize;
  switch (outcome.status) {
    case Status::kSystemError: {
      const SystemError* entry = FindSystemError(outcome.error);
      const uint32_t number = static_cast<uint32_t>(outcome.error);
      // HRESULTs read best in hex, as winerror.h lists them.
      const std::string shown = IsFwpHresult(outcome.error)
                                    ? Format("0x%08X", static_cast<unsigned>(number))
                                    : Format("%d", outcome.error);
      if (entry == nullptr) {
        return {"ERR_WFP_SYSTEM_ERROR",
                IsFwpHresult(outcome.error)
                    ? Format("%s failed with WFP error %s, which this package "
                             "does not know; look it up among winerror.h's "
                             "FWP_E_* codes",
                             what, shown.c_str())
                    : Format("%s failed with Windows error %s, which this "
                             "package does not know; look it up in the "
                             "Windows Sockets error codes",
                             what, shown.c_str()),
                true, number, false};
      }
      const char* meaning =
          entry->meaning ? entry->meaning : MeaningFor(entry->code, ioctl);
      return {entry->name,
              Format("%s failed with %s (%s): %s", what, entry->name,
                     shown.c_str(), meaning),
              true, number, false};
    }
    case Status::kBlobTooLarge:
      if (ioctl == kSioSetRedirectRecords) {
        return {"ERR_WFP_BLOB_TOO_LARGE",
                Format("%s: the records are larger than the %u bytes this "
                       "package sends; pass the bytes queryRedirectRecords "
                       "returned",
                       what, cap),
                false, 0, true};
      }
      return {"ERR_WFP_BLOB_TOO_LARGE",
              Format("%s: the redirect data needs %u bytes, more than the "
                     "%u bytes this package accepts; the driver that "
                     "redirected the connection wrote an unusually large blob",
                     what, static_cast<unsigned>(outcome.bytes), cap),
              true, static_cast<uint32_t>(outcome.error), false};
    case Status::kBlobUnstable:
      return {"ERR_WFP_BLOB_UNSTABLE",
              Format("%s: the provider asked for a different buffer size on "
                     "each of %d calls; try the query again",
                     what, kMaxQueryAttempts),
              true, static_cast<uint32_t>(outcome.error), false};
    case Status::kBadBytesReturned:
      return {"ERR_WFP_BAD_BYTES_RETURNED",
              Format("%s reported success with %u bytes returned, more than "
                     "the buffer it was given; nothing past the buffer was "
                     "read. This is a bug in the transport provider",
                     what, static_cast<unsigned>(outcome.bytes)),
              false, 0, false};
    case Status::kOutOfMemory:
      return {"ERR_WFP_OUT_OF_MEMORY",
              Format("%s: could not allocate %u bytes for the redirect data",
                     what, static_cast<unsigned>(outcome.bytes)),
              false, 0, false};
    case Status::kEmptyInput:
      return {"ERR_WFP_RECORDS_EMPTY",
              Format("%s: the records are empty; pass the bytes "
                     "queryRedirectRecords returned for the accepted socket",
                     what),
              false, 0, true};
    case Status::kUnsupportedPlatform:
      return {"ERR_WFP_UNSUPPORTED_PLATFORM",
              Format("%s exists only on Windows 8 / Windows Server 2012 and "
                     "later; this platform has no WFP redirect IOCTLs (check "
                     "isSupported() first)",
                     what),
              false, 0, false};
    case Status::kOk:
      break;
  }
  return {"ERR_WFP_INTERNAL", Format("%s: unexpected outcome", what), false, 0,
          false};
}

}  // namespace wfp
