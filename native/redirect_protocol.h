// The buffer protocol of the three WFP redirect IOCTLs.
//
// It is written against a provider type instead of Winsock, so the very same
// code runs against the real WSAIoctl (native/win/redirect_ioctl.cc) and
// against the scripted provider of the conformance tests (test/native/). It
// includes no OS header and builds everywhere.
//
// A provider has two members, shaped like the Winsock calls they stand for:
//   int Ioctl(uint32_t code, const void* in, uint32_t in_size,
//             void* out, uint32_t out_size, uint32_t* bytes_returned);
//       // 0 on success, anything else (SOCKET_ERROR) on failure
//   int LastError();  // WSAGetLastError() after a failed Ioctl
#ifndef WFP_REDIRECT_PROTOCOL_H_
#define WFP_REDIRECT_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace wfp {

// Control codes from the Windows SDK's mstcpip.h: _WSAIOW(IOC_VENDOR, 220..222).
// mingw-w64's copy of the header lacks them.
constexpr uint32_t kSioQueryRedirectRecords = 0x980000DCu;
constexpr uint32_t kSioQueryRedirectContext = 0x980000DDu;
constexpr uint32_t kSioSetRedirectRecords = 0x980000DEu;

// The error codes the protocol itself reasons about (winerror.h values).
constexpr int kErrorInsufficientBuffer = 122;
constexpr int kWsaEFault = 10014;
constexpr int kWsaEInval = 10022;

// The first buffer is the 1 KiB the documentation suggests; it lives on the
// stack, so the common case allocates nothing but the returned Buffer.
constexpr uint32_t kInitialBlobSize = 1024;
// Nothing larger is asked for or sent. Real records and contexts are a few
// hundred bytes at most.
constexpr uint32_t kMaxBlobSize = 64 * 1024;
// Geometric growth from 1 KiB (a size-less ERROR_INSUFFICIENT_BUFFER) reaches
// the cap in 7 calls; the rest covers a blob that grows between the size
// answer and the next call.
constexpr int kMaxQueryAttempts = 10;

enum class Status {
  kOk,
  kSystemError,       // the provider failed; `error` says how
  kBlobTooLarge,      // the blob needs more than kMaxBlobSize bytes
  kBlobUnstable,      // the size kept changing for kMaxQueryAttempts calls
  kBadBytesReturned,  // success, but more bytes claimed than the buffer holds
  kOutOfMemory,
  kEmptyInput,        // set: records of 0 bytes
  kUnsupportedPlatform,
};

struct Outcome {
  Status status;
  int error;       // the provider's last error code, 0 when there is none
  uint32_t bytes;  // bytes returned, or the size asked for when relevant
};

inline Outcome Ok(uint32_t bytes) { return {Status::kOk, 0, bytes}; }

// The buffer size for the next attempt after a failed query, or 0 when the
// error is not one of the "buffer too small" answers the documentation and
// the field describe:
//  - ERROR_INSUFFICIENT_BUFFER with the required size in bytes-returned
//    (documented in the Remarks of both query IOCTLs);
//  - WSAEINVAL with bytes-returned 0 (documented under lpcbBytesReturned);
//    WSAEINVAL also means "not applicable to this socket", which is what
//    every connection nobody redirected answers, so the next try is the cap
//    itself: one more call settles both meanings, and the caller reports
//    WSAEINVAL itself when the cap gets it too (two calls in all);
//  - WSAEFAULT with a size (seen in the wild): like ERROR_INSUFFICIENT_BUFFER.
inline uint32_t NextBlobSize(int error, uint32_t size, uint32_t returned) {
  const uint32_t doubled = size * 2;  // size <= kMaxBlobSize: no overflow
  switch (error) {
    case kErrorInsufficientBuffer:
      return returned > size ? returned : doubled;
    case kWsaEFault:
      return returned > size ? returned : 0;
    case kWsaEInval:
      if (returned > size) return returned;
      if (returned != 0) return 0;
      return size < kMaxBlobSize ? kMaxBlobSize : doubled;
    default:
      return 0;
  }
}

// Queries a variable-length blob. On success calls sink(data, size) exactly
// once with the bytes the provider returned; the data pointer is scratch
// memory that is gone when this function returns, so the sink must copy.
// Scratch buffers start zeroed: a provider that claims bytes it did not write
// hands out zeros, never leftovers of this process's memory.
template <typename Provider, typename Sink>
Outcome QueryBlob(Provider& provider, uint32_t code, Sink&& sink) {
  uint8_t first[kInitialBlobSize] = {};
  std::unique_ptr<uint8_t[]> grown;
  uint8_t* buffer = first;
  uint32_t size = kInitialBlobSize;
  int last_error = 0;

  for (int attempt = 0; attempt < kMaxQueryAttempts; ++attempt) {
    uint32_t returned = 0;
    if (provider.Ioctl(code, nullptr, 0, buffer, size, &returned) == 0) {
      if (returned > size) return {Status::kBadBytesReturned, 0, returned};
      sink(static_cast<const uint8_t*>(buffer), returned);
      return Ok(returned);
    }
    last_error = provider.LastError();
    const uint32_t next = NextBlobSize(last_error, size, returned);
    if (next == 0) return {Status::kSystemError, last_error, returned};
    if (next > kMaxBlobSize) {
      // A size-less WSAEINVAL at the cap is most likely the other meaning of
      // WSAEINVAL ("not applicable"): report the provider's own answer.
      if (last_error == kWsaEInval && returned == 0) {
        return {Status::kSystemError, last_error, 0};
      }
      return {Status::kBlobTooLarge, last_error, next};
    }
    grown.reset(new (std::nothrow) uint8_t[next]());
    if (!grown) return {Status::kOutOfMemory, last_error, next};
    buffer = grown.get();
    size = next;
  }
  return {Status::kBlobUnstable, last_error, size};
}

// Checks a blob to be sent before anything reaches the provider.
inline Status CheckBlobToSet(size_t size) {
  if (size == 0) return Status::kEmptyInput;
  if (size > kMaxBlobSize) return Status::kBlobTooLarge;
  return Status::kOk;
}

// Sends a blob as the input of an IOCTL that has no output.
template <typename Provider>
Outcome SetBlob(Provider& provider, uint32_t code, const uint8_t* data,
                size_t size) {
  const Status checked = CheckBlobToSet(size);
  if (checked != Status::kOk) return {checked, 0, 0};
  uint32_t returned = 0;
  if (provider.Ioctl(code, data, static_cast<uint32_t>(size), nullptr, 0,
                     &returned) == 0) {
    return Ok(0);
  }
  return {Status::kSystemError, provider.LastError(), returned};
}

}  // namespace wfp

#endif  // WFP_REDIRECT_PROTOCOL_H_
