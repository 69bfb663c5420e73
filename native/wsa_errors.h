// What a failed IOCTL means, in words a program and a person can use:
// Winsock code -> symbolic name -> explanation and advice. Portable (a table
// of numbers and strings), so the conformance tests check it on every OS.
#ifndef WFP_REDIRECT_WSA_ERRORS_H_
#define WFP_REDIRECT_WSA_ERRORS_H_

#include <cstdint>
#include <string>

#include "redirect_protocol.h"

namespace wfp {

// winerror.h's FWP_E_NOT_FOUND, as WSAGetLastError() returns it (an int).
// WFPSampler's helper reads it, on the context query, as "redirected, but no
// context".
constexpr int kFwpENotFound = static_cast<int>(0x80320008u);

// "SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS" and so on; "IOCTL 0x..." otherwise.
std::string IoctlName(uint32_t code);

// "WSAEOPNOTSUPP", "FWP_E_NOT_FOUND" and so on, or nullptr for a code outside the table.
const char* SystemErrorName(int error);

struct FailureReport {
  std::string code;     // what WfpRedirectError.code says
  std::string message;  // what happened, and what usually causes it
  bool has_errno;       // whether `errno` carries the provider's code
  // The code as an unsigned number: Winsock's are small and positive, and an
  // HRESULT (FWP_E_NOT_FOUND, 0x80320008) reads as itself, not negative.
  uint32_t errno_value;
  bool is_range_error;  // an input the caller must change, not a system failure
};

// Describes a failed outcome of a query or set (status other than kOk).
FailureReport DescribeFailure(const Outcome& outcome, uint32_t ioctl);

}  // namespace wfp

#endif  // WFP_REDIRECT_WSA_ERRORS_H_
