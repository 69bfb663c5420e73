// wfp_sim.node, a test-only Windows addon: a simulated WFP redirect service
// under the unmodified production wfp_redirect.node. It patches that module's
// import table entries for WS2_32!WSAIoctl and WS2_32!WSASendMsg and answers
// the three WFP redirect control codes itself; every other control code goes
// to the real WSAIoctl. For UDP it hands out its own WSARecvMsg (asked for
// through WSAIoctl), which runs the real one and then adds a redirected flow's
// records and context as control messages to its first datagram, and its
// WSASendMsg notes the records a datagram carries and sends it without them,
// as the stack consumes them. Its setsockopt notes which sockets asked for the
// redirect control messages (IP_WFP_REDIRECT_RECORDS / _CONTEXT = 1 at
// IPPROTO_IP, IPV6_WFP_REDIRECT_* at IPPROTO_IPV6), and its WSARecvMsg adds a
// message only where the socket asked for it at the level it is delivered at;
// its closesocket forgets them. Nothing of it is in the production addon or in
// the package.
//
//   install(moduleName)   patches the imports of the loaded module (e.g. "wfp_redirect.node")
//   uninstall()           puts the real functions back
//   redirect(peerAddress, peerPort, records, context)
//                         a redirected connection, named by what getpeername
//                         reports for its accepted socket (the client's end)
//   redirectWithoutContext(peerAddress, peerPort, records)
//                         a redirected connection whose callout stored no
//                         context: the context query fails with FWP_E_NOT_FOUND
//                         (0x80320008), as WFPSampler's helper expects
//   redirectEvery(records, context)
//                         every connection is redirected with these (the relay
//                         benchmark): no lookup by peer, and set calls are
//                         counted, not kept
//   tooSmall(mode)        how a query with a short buffer is answered:
//                         'ERROR_INSUFFICIENT_BUFFER' (with the size, the default),
//                         'WSAEINVAL' (0 bytes) or 'WSAEFAULT' (with the size)
//   reset()               forgets redirects, sets and counts
//   sets()                every SIO_SET_..._RECORDS: { socket, records, connectedAtSet,
//                         and the socket's endpoints as the OS reports them now }
//   calls()               { queryRecords, queryContext, setRecords, shortBuffer,
//                           receiveMsg, sendMsg, udpDelivered, udpWithheld
//                           (flows whose socket asked for neither message) }
//   udpRedirect(peerAddress, peerPort, records, context, form)
//                         a redirected UDP flow, named by its sender: its next
//                         datagram carries the records and context, once.
//                         form: 'well-formed', 'other-ip-level' (the other IP
//                         level than the socket's), or a malformed or foreign
//                         control area: 'truncated-header', 'length-past-buffer',
//                         'wrong-level' (IPPROTO_UDP and SOL_SOCKET)
//   socketOptions()       the redirect options each open socket asked for:
//                         [{ socket, level, name }] (name 60: records, 70: context)
//   udpSends()            every WSASendMsg: { socket, localPort, address, port,
//                         size, records (a Buffer, or null when none) }
//
// A query on a socket with no redirect answers WSAEINVAL, as a stack without
// redirect data for the socket does. Everything runs on the JS thread that
// calls the production addon; the state is process-wide, like the import table.
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <napi.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace {

using WsaIoctlFunction = int(WSAAPI*)(SOCKET, DWORD, LPVOID, DWORD, LPVOID, DWORD, LPDWORD, LPWSAOVERLAPPED,
                                      LPWSAOVERLAPPED_COMPLETION_ROUTINE);
using WsaSendMsgFunction = int(WSAAPI*)(SOCKET, LPWSAMSG, DWORD, LPDWORD, LPWSAOVERLAPPED,
                                        LPWSAOVERLAPPED_COMPLETION_ROUTINE);
using SetSockOptFunction = int(WSAAPI*)(SOCKET, int, int, const char*, int);
using CloseSocketFunction = int(WSAAPI*)(SOCKET);
constexpr int kRedirectRecords = 60;  // IP_WFP_REDIRECT_RECORDS
constexpr int kRedirectContext = 70;  // IP_WFP_REDIRECT_CONTEXT

constexpr DWORD kQueryRecords = 0x980000DC;
constexpr DWORD kQueryContext = 0x980000DD;
constexpr DWORD kSetRecords = 0x980000DE;
// winerror.h's FWP_E_NOT_FOUND, as WSAGetLastError() returns it.
constexpr int kFwpENotFound = static_cast<int>(0x80320008u);

struct PeerKey {
  std::string address;  // inet_ntop of the peer, IPv4-mapped IPv6 as dotted IPv4
  uint16_t port;
  bool operator<(const PeerKey& other) const { return std::tie(address, port) < std::tie(other.address, other.port); }
};

struct Redirect {
  std::vector<uint8_t> records;
  std::vector<uint8_t> context;
  bool context_not_found = false;  // the context query answers FWP_E_NOT_FOUND
};

struct SetCall {
  SOCKET socket;
  std::vector<uint8_t> records;
  bool connected_at_set;
};

enum class TooSmall { kInsufficientBuffer, kInvalid, kFault };

enum class ControlForm { kWellFormed, kOtherIpLevel, kTruncatedHeader, kLengthPastBuffer, kWrongLevel };

// A redirect option a socket turned on: (level, name).
using SocketOption = std::pair<int, int>;

struct UdpRedirect {
  std::vector<uint8_t> records;
  std::vector<uint8_t> context;
  ControlForm form;
};

struct UdpSend {
  SOCKET socket;
  uint16_t local_port;
  std::string address;
  uint16_t port;
  size_t size;
  bool has_records;
  std::vector<uint8_t> records;
};

struct Simulation {
  WsaIoctlFunction real = nullptr;
  void** slot = nullptr;  // the patched import table entries
  WsaSendMsgFunction real_send_msg = nullptr;
  void** send_msg_slot = nullptr;
  LPFN_WSARECVMSG real_receive_msg = nullptr;
  SetSockOptFunction real_setsockopt = nullptr;
  void** setsockopt_slot = nullptr;
  CloseSocketFunction real_closesocket = nullptr;
  void** closesocket_slot = nullptr;
  std::map<SOCKET, std::set<SocketOption>> options;
  std::map<PeerKey, Redirect> redirects;
  bool redirect_every = false;
  Redirect every;
  std::vector<SetCall> sets;
  std::map<PeerKey, UdpRedirect> udp_redirects;
  std::vector<UdpSend> udp_sends;
  TooSmall too_small = TooSmall::kInsufficientBuffer;
  double query_records = 0, query_context = 0, set_records = 0, short_buffer = 0;
  double receive_msg = 0, send_msg = 0, udp_delivered = 0, udp_withheld = 0;
};

Simulation sim;

// A sockaddr as text and port; false when it is neither IPv4 nor IPv6.
bool TextOf(const sockaddr_storage& storage, std::string* address, uint16_t* port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (storage.ss_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
    *port = ntohs(in4->sin_port);
  } else if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    const uint8_t* bytes = in6->sin6_addr.s6_addr;
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(bytes, kMapped, 12) == 0) {
      inet_ntop(AF_INET, bytes + 12, text, sizeof text);
    } else {
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    }
    *port = ntohs(in6->sin6_port);
  } else {
    return false;
  }
  *address = text;
  return true;
}

// getsockname / getpeername as text and port; false when the call fails.
bool EndpointOf(SOCKET socket, bool peer, std::string* address, uint16_t* port) {
  sockaddr_storage storage{};
  int length = sizeof storage;
  sockaddr* raw = reinterpret_cast<sockaddr*>(&storage);
  if ((peer ? getpeername(socket, raw, &length) : getsockname(socket, raw, &length)) != 0) return false;
  return TextOf(storage, address, port);
}

// Appends a control message at *used in the caller's control buffer; false when it does not fit.
bool Append(WSABUF& control, ULONG capacity, ULONG* used, int level, int type, const std::vector<uint8_t>& data) {
  const size_t space = WSA_CMSG_SPACE(data.size());
  if (*used > capacity || space > capacity - *used) return false;
  char* at = control.buf + *used;
  std::memset(at, 0, space);
  WSACMSGHDR header{};
  header.cmsg_len = WSA_CMSG_LEN(data.size());
  header.cmsg_level = level;
  header.cmsg_type = type;
  std::memcpy(at, &header, sizeof header);
  if (!data.empty()) std::memcpy(at + WSA_CMSG_LEN(0), data.data(), data.size());
  *used += static_cast<ULONG>(space);
  return true;
}

// Whether `socket` turned on redirect option `name` at `level`.
bool Asked(SOCKET socket, int level, int name) {
  const auto found = sim.options.find(socket);
  return found != sim.options.end() && found->second.count({level, name}) != 0;
}

// The level a flow's redirect data is reported at: the socket's own family's,
// and IPPROTO_IP for an IPv4 sender on an IPv6 (dual-stack) socket.
int DeliveryLevel(SOCKET socket, const sockaddr_storage& sender) {
  sockaddr_storage local{};
  int local_length = sizeof local;
  getsockname(socket, reinterpret_cast<sockaddr*>(&local), &local_length);
  if (local.ss_family != AF_INET6) return IPPROTO_IP;
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&sender);
  return sender.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) ? IPPROTO_IP : IPPROTO_IPV6;
}

// Notes the redirect options a socket turns on (or off); a stack that knows
// them accepts them, whatever Wine says. Every other option goes to the real call.
int WSAAPI SimulatedSetSockOpt(SOCKET socket, int level, int name, const char* value, int length) {
  const bool redirect_option = (level == IPPROTO_IP || level == IPPROTO_IPV6) && (name == kRedirectRecords || name == kRedirectContext);
  if (!redirect_option) return sim.real_setsockopt(socket, level, name, value, length);
  if (value == nullptr || length < static_cast<int>(sizeof(DWORD))) {
    WSASetLastError(WSAEFAULT);
    return SOCKET_ERROR;
  }
  DWORD on = 0;
  std::memcpy(&on, value, sizeof on);
  if (on != 0) sim.options[socket].insert({level, name});
  else sim.options[socket].erase({level, name});
  return 0;
}

// A closed socket's number may come back for another socket, which asked for nothing yet.
int WSAAPI SimulatedCloseSocket(SOCKET socket) {
  sim.options.erase(socket);
  return sim.real_closesocket(socket);
}

// The real WSARecvMsg, then the flow's redirect data on its first datagram.
int WSAAPI SimulatedRecvMsg(SOCKET socket, LPWSAMSG message, LPDWORD received, LPWSAOVERLAPPED overlapped,
                            LPWSAOVERLAPPED_COMPLETION_ROUTINE completion) {
  ++sim.receive_msg;
  const ULONG capacity = message->Control.len;
  const int rc = sim.real_receive_msg(socket, message, received, overlapped, completion);
  if (rc != 0 || overlapped != nullptr || message->name == nullptr) return rc;
  PeerKey key;
  sockaddr_storage sender{};
  std::memcpy(&sender, message->name, message->namelen < static_cast<int>(sizeof sender) ? message->namelen : sizeof sender);
  if (!TextOf(sender, &key.address, &key.port)) return rc;
  const auto found = sim.udp_redirects.find(key);
  if (found == sim.udp_redirects.end()) return rc;
  const UdpRedirect flow = found->second;
  sim.udp_redirects.erase(found);  // the flow's first datagram only
  const int level = DeliveryLevel(socket, sender);
  const bool wants_records = Asked(socket, level, kRedirectRecords);
  const bool wants_context = Asked(socket, level, kRedirectContext);
  if (!wants_records && !wants_context) {
    // The stack reports redirect data only to a socket that asked for it.
    ++sim.udp_withheld;
    return rc;
  }
  ++sim.udp_delivered;
  const std::vector<uint8_t>* records = wants_records ? &flow.records : nullptr;
  const std::vector<uint8_t>* context = wants_context ? &flow.context : nullptr;
  ULONG used = message->Control.len <= capacity ? message->Control.len : capacity;
  bool fits = true;
  auto append = [&](int at, int type, const std::vector<uint8_t>* data) {
    fits = fits && (data == nullptr || Append(message->Control, capacity, &used, at, type, *data));
  };
  switch (flow.form) {
    case ControlForm::kWellFormed:
      append(level, kRedirectRecords, records);
      append(level, kRedirectContext, context);
      break;
    case ControlForm::kOtherIpLevel: {
      // A stack that reports at the other IP level (a dual-stack socket's IPv4 flow may).
      const int other = level == IPPROTO_IP ? IPPROTO_IPV6 : IPPROTO_IP;
      append(other, kRedirectRecords, records);
      append(other, kRedirectContext, context);
      break;
    }
    case ControlForm::kWrongLevel:
      // What other levels mean by these numbers: not redirect data.
      append(IPPROTO_UDP, kRedirectRecords, records);
      append(SOL_SOCKET, kRedirectContext, context);
      break;
    case ControlForm::kTruncatedHeader:
      // Half a header at the end of the area.
      if (used + 8 <= capacity) {
        std::memset(message->Control.buf + used, 0x41, 8);
        used += 8;
      }
      break;
    case ControlForm::kLengthPastBuffer: {
      // A header whose length runs past the end of the area, with a well-formed message before it.
      append(level, kRedirectContext, context);
      if (fits && used + WSA_CMSG_LEN(0) <= capacity) {
        WSACMSGHDR header{};
        header.cmsg_len = WSA_CMSG_LEN(0) + flow.records.size() + 4096;
        header.cmsg_level = level;
        header.cmsg_type = kRedirectRecords;
        std::memcpy(message->Control.buf + used, &header, sizeof header);
        used += WSA_CMSG_LEN(0);
      }
      break;
    }
  }
  if (!fits) message->dwFlags |= MSG_CTRUNC;
  message->Control.len = used;
  return rc;
}

// Notes the records a datagram carries, then sends it without them: the
// stack takes them, the network never sees them.
int WSAAPI SimulatedSendMsg(SOCKET socket, LPWSAMSG message, DWORD flags, LPDWORD sent, LPWSAOVERLAPPED overlapped,
                            LPWSAOVERLAPPED_COMPLETION_ROUTINE completion) {
  ++sim.send_msg;
  UdpSend call{socket, 0, "", 0, 0, false, {}};
  std::string ignored;
  EndpointOf(socket, false, &ignored, &call.local_port);
  if (message->name != nullptr) {
    sockaddr_storage target{};
    std::memcpy(&target, message->name, message->namelen < static_cast<int>(sizeof target) ? message->namelen : sizeof target);
    TextOf(target, &call.address, &call.port);
  }
  for (DWORD i = 0; i < message->dwBufferCount; ++i) call.size += message->lpBuffers[i].len;
  const char* control = message->Control.buf;
  ULONG offset = 0;
  while (control != nullptr && offset + sizeof(WSACMSGHDR) <= message->Control.len) {
    WSACMSGHDR header;
    std::memcpy(&header, control + offset, sizeof header);
    if (header.cmsg_len < WSA_CMSG_LEN(0) || header.cmsg_len > message->Control.len - offset) break;
    if (header.cmsg_type == kRedirectRecords) {
      call.has_records = true;
      const uint8_t* data = reinterpret_cast<const uint8_t*>(control + offset + WSA_CMSG_LEN(0));
      call.records.assign(data, data + (header.cmsg_len - WSA_CMSG_LEN(0)));
    }
    offset += static_cast<ULONG>(WSA_CMSGHDR_ALIGN(header.cmsg_len));
  }
  sim.udp_sends.push_back(call);
  WSAMSG stripped = *message;
  stripped.Control = {0, nullptr};
  return sim.real_send_msg(socket, &stripped, flags, sent, overlapped, completion);
}

int Fail(int error, LPDWORD returned, DWORD bytes) {
  if (returned != nullptr) *returned = bytes;
  WSASetLastError(error);
  return SOCKET_ERROR;
}

int WSAAPI SimulatedIoctl(SOCKET socket, DWORD code, LPVOID in, DWORD in_size, LPVOID out, DWORD out_size,
                          LPDWORD returned, LPWSAOVERLAPPED overlapped,
                          LPWSAOVERLAPPED_COMPLETION_ROUTINE completion) {
  if (code == SIO_GET_EXTENSION_FUNCTION_POINTER && in != nullptr && in_size == sizeof(GUID) &&
      out != nullptr && out_size == sizeof(LPFN_WSARECVMSG)) {
    const GUID receive_msg = WSAID_WSARECVMSG;
    if (std::memcmp(in, &receive_msg, sizeof receive_msg) == 0) {
      const int rc = sim.real(socket, code, in, in_size, out, out_size, returned, overlapped, completion);
      if (rc != 0) return rc;
      std::memcpy(&sim.real_receive_msg, out, sizeof sim.real_receive_msg);
      const LPFN_WSARECVMSG simulated = &SimulatedRecvMsg;
      std::memcpy(out, &simulated, sizeof simulated);
      return 0;
    }
  }
  if (code != kQueryRecords && code != kQueryContext && code != kSetRecords) {
    return sim.real(socket, code, in, in_size, out, out_size, returned, overlapped, completion);
  }
  if (code == kSetRecords) {
    ++sim.set_records;
    if (in == nullptr || in_size == 0) return Fail(WSAEINVAL, returned, 0);
    if (returned != nullptr) *returned = 0;
    if (sim.redirect_every) return 0;
    const uint8_t* bytes = static_cast<const uint8_t*>(in);
    std::string ignored;
    uint16_t port = 0;
    sim.sets.push_back({socket, std::vector<uint8_t>(bytes, bytes + in_size), EndpointOf(socket, true, &ignored, &port)});
    return 0;
  }
  (code == kQueryRecords ? sim.query_records : sim.query_context) += 1;
  const Redirect* redirect = &sim.every;
  if (!sim.redirect_every) {
    PeerKey key;
    if (!EndpointOf(socket, true, &key.address, &key.port)) return Fail(WSAENOTCONN, returned, 0);
    const auto found = sim.redirects.find(key);
    if (found == sim.redirects.end()) return Fail(WSAEINVAL, returned, 0);
    redirect = &found->second;
  }
  if (code == kQueryContext && redirect->context_not_found) return Fail(kFwpENotFound, returned, 0);
  const std::vector<uint8_t>& blob = code == kQueryRecords ? redirect->records : redirect->context;
  const DWORD size = static_cast<DWORD>(blob.size());
  if (out == nullptr || out_size < size) {
    ++sim.short_buffer;
    switch (sim.too_small) {
      case TooSmall::kInsufficientBuffer: return Fail(ERROR_INSUFFICIENT_BUFFER, returned, size);
      case TooSmall::kInvalid: return Fail(WSAEINVAL, returned, 0);
      case TooSmall::kFault: return Fail(WSAEFAULT, returned, size);
    }
  }
  if (size > 0) std::memcpy(out, blob.data(), size);
  if (returned != nullptr) *returned = size;
  return 0;
}

// The import table entry of `module` through which it calls WS2_32!`name`,
// found by name (or, for an import by ordinal, by the address it holds).
void** FindWs2Import(HMODULE module, const char* name, void* real) {
  uint8_t* base = reinterpret_cast<uint8_t*>(module);
  const auto* dos = reinterpret_cast<const IMAGE_DOS_HEADER*>(base);
  if (dos->e_magic != IMAGE_DOS_SIGNATURE) return nullptr;
  const auto* nt = reinterpret_cast<const IMAGE_NT_HEADERS*>(base + dos->e_lfanew);
  if (nt->Signature != IMAGE_NT_SIGNATURE) return nullptr;
  const IMAGE_DATA_DIRECTORY& imports = nt->OptionalHeader.DataDirectory[IMAGE_DIRECTORY_ENTRY_IMPORT];
  if (imports.VirtualAddress == 0) return nullptr;
  for (auto* entry = reinterpret_cast<IMAGE_IMPORT_DESCRIPTOR*>(base + imports.VirtualAddress); entry->Name != 0; ++entry) {
    if (_stricmp(reinterpret_cast<const char*>(base + entry->Name), "ws2_32.dll") != 0) continue;
    auto* slots = reinterpret_cast<IMAGE_THUNK_DATA*>(base + entry->FirstThunk);
    const auto* names = reinterpret_cast<const IMAGE_THUNK_DATA*>(base + (entry->OriginalFirstThunk ? entry->OriginalFirstThunk : entry->FirstThunk));
    for (; slots->u1.Function != 0; ++slots, ++names) {
      bool match = reinterpret_cast<void*>(slots->u1.Function) == real;
      if (!match && entry->OriginalFirstThunk != 0 && !IMAGE_SNAP_BY_ORDINAL(names->u1.Ordinal)) {
        const auto* by_name = reinterpret_cast<const IMAGE_IMPORT_BY_NAME*>(base + names->u1.AddressOfData);
        match = std::strcmp(reinterpret_cast<const char*>(by_name->Name), name) == 0;
      }
      if (match) return reinterpret_cast<void**>(&slots->u1.Function);
    }
  }
  return nullptr;
}

bool WriteSlot(void** slot, void* value) {
  DWORD previous = 0;
  if (!VirtualProtect(slot, sizeof(void*), PAGE_READWRITE, &previous)) return false;
  *slot = value;
  VirtualProtect(slot, sizeof(void*), previous, &previous);
  return true;
}

Napi::Value Throw(Napi::Env env, const std::string& message) {
  Napi::Error::New(env, "wfp_sim: " + message).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value Install(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return Throw(env, "install(moduleName): a string");
  if (sim.slot != nullptr) return Throw(env, "already installed");
  const std::u16string name = info[0].As<Napi::String>().Utf16Value();
  HMODULE module = GetModuleHandleW(reinterpret_cast<const wchar_t*>(name.c_str()));
  if (module == nullptr) return Throw(env, "no loaded module named " + info[0].As<Napi::String>().Utf8Value());
  // Through void*: FARPROC is a generic function type, each function has its own.
  HMODULE ws2 = GetModuleHandleW(L"ws2_32.dll");
  void** slot = FindWs2Import(module, "WSAIoctl", reinterpret_cast<void*>(GetProcAddress(ws2, "WSAIoctl")));
  if (slot == nullptr) return Throw(env, "the module does not import WS2_32!WSAIoctl");
  void** send_slot = FindWs2Import(module, "WSASendMsg", reinterpret_cast<void*>(GetProcAddress(ws2, "WSASendMsg")));
  if (send_slot == nullptr) return Throw(env, "the module does not import WS2_32!WSASendMsg");
  void** setsockopt_slot = FindWs2Import(module, "setsockopt", reinterpret_cast<void*>(GetProcAddress(ws2, "setsockopt")));
  if (setsockopt_slot == nullptr) return Throw(env, "the module does not import WS2_32!setsockopt");
  void** closesocket_slot = FindWs2Import(module, "closesocket", reinterpret_cast<void*>(GetProcAddress(ws2, "closesocket")));
  if (closesocket_slot == nullptr) return Throw(env, "the module does not import WS2_32!closesocket");
  sim.real = reinterpret_cast<WsaIoctlFunction>(*slot);
  sim.real_send_msg = reinterpret_cast<WsaSendMsgFunction>(*send_slot);
  sim.real_setsockopt = reinterpret_cast<SetSockOptFunction>(*setsockopt_slot);
  sim.real_closesocket = reinterpret_cast<CloseSocketFunction>(*closesocket_slot);
  if (!WriteSlot(slot, reinterpret_cast<void*>(&SimulatedIoctl)) ||
      !WriteSlot(send_slot, reinterpret_cast<void*>(&SimulatedSendMsg)) ||
      !WriteSlot(setsockopt_slot, reinterpret_cast<void*>(&SimulatedSetSockOpt)) ||
      !WriteSlot(closesocket_slot, reinterpret_cast<void*>(&SimulatedCloseSocket))) {
    return Throw(env, "VirtualProtect failed");
  }
  sim.slot = slot;
  sim.send_msg_slot = send_slot;
  sim.setsockopt_slot = setsockopt_slot;
  sim.closesocket_slot = closesocket_slot;
  return env.Undefined();
}

Napi::Value Uninstall(const Napi::CallbackInfo& info) {
  if (sim.slot != nullptr) {
    WriteSlot(sim.slot, reinterpret_cast<void*>(sim.real));
    WriteSlot(sim.send_msg_slot, reinterpret_cast<void*>(sim.real_send_msg));
    WriteSlot(sim.setsockopt_slot, reinterpret_cast<void*>(sim.real_setsockopt));
    WriteSlot(sim.closesocket_slot, reinterpret_cast<void*>(sim.real_closesocket));
    sim.slot = sim.send_msg_slot = sim.setsockopt_slot = sim.closesocket_slot = nullptr;
    // Sockets that asked for the options before this keep them (a real stack would).
    // Sockets opened before this keep the simulated WSARecvMsg, which goes on
    // calling the real one; only the registered flows are gone (reset).
  }
  return info.Env().Undefined();
}

std::vector<uint8_t> BytesOf(Napi::Value value) {
  Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(bytes.Data(), bytes.Data() + bytes.ByteLength());
}

Napi::Value AddRedirect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsNumber() || !info[2].IsTypedArray() || !info[3].IsTypedArray()) {
    return Throw(env, "redirect(peerAddress, peerPort, records, context)");
  }
  PeerKey key{info[0].As<Napi::String>().Utf8Value(), static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value())};
  sim.redirects[key] = {BytesOf(info[2]), BytesOf(info[3]), false};
  return env.Undefined();
}

Napi::Value AddRedirectWithoutContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsNumber() || !info[2].IsTypedArray()) {
    return Throw(env, "redirectWithoutContext(peerAddress, peerPort, records)");
  }
  PeerKey key{info[0].As<Napi::String>().Utf8Value(), static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value())};
  sim.redirects[key] = {BytesOf(info[2]), {}, true};
  return env.Undefined();
}

Napi::Value RedirectEvery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray()) return Throw(env, "redirectEvery(records, context)");
  sim.every = {BytesOf(info[0]), BytesOf(info[1]), false};
  sim.redirect_every = true;
  return env.Undefined();
}

Napi::Value AddUdpRedirect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsNumber() || !info[2].IsTypedArray() || !info[3].IsTypedArray() || !info[4].IsString()) {
    return Throw(env, "udpRedirect(peerAddress, peerPort, records, context, form)");
  }
  const std::string form = info[4].As<Napi::String>().Utf8Value();
  ControlForm parsed;
  if (form == "well-formed") parsed = ControlForm::kWellFormed;
  else if (form == "other-ip-level") parsed = ControlForm::kOtherIpLevel;
  else if (form == "truncated-header") parsed = ControlForm::kTruncatedHeader;
  else if (form == "length-past-buffer") parsed = ControlForm::kLengthPastBuffer;
  else if (form == "wrong-level") parsed = ControlForm::kWrongLevel;
  else return Throw(env, "form: 'well-formed' | 'other-ip-level' | 'truncated-header' | 'length-past-buffer' | 'wrong-level'");
  PeerKey key{info[0].As<Napi::String>().Utf8Value(), static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value())};
  sim.udp_redirects[key] = {BytesOf(info[2]), BytesOf(info[3]), parsed};
  return env.Undefined();
}

Napi::Value UdpSends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, sim.udp_sends.size());
  for (size_t i = 0; i < sim.udp_sends.size(); ++i) {
    const UdpSend& call = sim.udp_sends[i];
    Napi::Object item = Napi::Object::New(env);
    item.Set("socket", static_cast<double>(call.socket));
    item.Set("localPort", call.local_port);
    item.Set("address", call.address);
    item.Set("port", call.port);
    item.Set("size", static_cast<double>(call.size));
    item.Set("records", call.has_records ? Napi::Value(Napi::Buffer<uint8_t>::Copy(env, call.records.data(), call.records.size()))
                                         : env.Null());
    result.Set(static_cast<uint32_t>(i), item);
  }
  return result;
}

Napi::Value SetTooSmall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string mode = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (mode == "ERROR_INSUFFICIENT_BUFFER") sim.too_small = TooSmall::kInsufficientBuffer;
  else if (mode == "WSAEINVAL") sim.too_small = TooSmall::kInvalid;
  else if (mode == "WSAEFAULT") sim.too_small = TooSmall::kFault;
  else return Throw(env, "tooSmall('ERROR_INSUFFICIENT_BUFFER' | 'WSAEINVAL' | 'WSAEFAULT')");
  return env.Undefined();
}

Napi::Value Reset(const Napi::CallbackInfo& info) {
  sim.redirects.clear();
  sim.redirect_every = false;
  sim.every = {};
  sim.sets.clear();
  sim.udp_redirects.clear();
  sim.udp_sends.clear();
  sim.receive_msg = sim.send_msg = sim.udp_delivered = sim.udp_withheld = 0;
  // The options of open sockets stay: they are the sockets' state, not the test's.
  sim.too_small = TooSmall::kInsufficientBuffer;
  sim.query_records = sim.query_context = sim.set_records = sim.short_buffer = 0;
  return info.Env().Undefined();
}

Napi::Value Sets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, sim.sets.size());
  for (size_t i = 0; i < sim.sets.size(); ++i) {
    const SetCall& call = sim.sets[i];
    Napi::Object item = Napi::Object::New(env);
    item.Set("socket", static_cast<double>(call.socket));
    item.Set("records", Napi::Buffer<uint8_t>::Copy(env, call.records.data(), call.records.size()));
    item.Set("connectedAtSet", call.connected_at_set);
    std::string address;
    uint16_t port = 0;
    if (EndpointOf(call.socket, false, &address, &port)) {
      item.Set("localAddress", address);
      item.Set("localPort", port);
    }
    if (EndpointOf(call.socket, true, &address, &port)) {
      item.Set("remoteAddress", address);
      item.Set("remotePort", port);
    }
    result.Set(static_cast<uint32_t>(i), item);
  }
  return result;
}

Napi::Value Calls(const Napi::CallbackInfo& info) {
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("queryRecords", sim.query_records);
  result.Set("queryContext", sim.query_context);
  result.Set("setRecords", sim.set_records);
  result.Set("shortBuffer", sim.short_buffer);
  result.Set("receiveMsg", sim.receive_msg);
  result.Set("sendMsg", sim.send_msg);
  result.Set("udpDelivered", sim.udp_delivered);
  result.Set("udpWithheld", sim.udp_withheld);
  return result;
}

Napi::Value SocketOptions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env);
  uint32_t index = 0;
  for (const auto& [socket, options] : sim.options) {
    for (const SocketOption& option : options) {
      Napi::Object item = Napi::Object::New(env);
      item.Set("socket", static_cast<double>(socket));
      item.Set("level", option.first);
      item.Set("name", option.second);
      result.Set(index++, item);
    }
  }
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("install", Napi::Function::New(env, Install));
  exports.Set("uninstall", Napi::Function::New(env, Uninstall));
  exports.Set("redirect", Napi::Function::New(env, AddRedirect));
  exports.Set("redirectWithoutContext", Napi::Function::New(env, AddRedirectWithoutContext));
  exports.Set("socketOptions", Napi::Function::New(env, SocketOptions));
  exports.Set("redirectEvery", Napi::Function::New(env, RedirectEvery));
  exports.Set("tooSmall", Napi::Function::New(env, SetTooSmall));
  exports.Set("reset", Napi::Function::New(env, Reset));
  exports.Set("sets", Napi::Function::New(env, Sets));
  exports.Set("calls", Napi::Function::New(env, Calls));
  exports.Set("udpRedirect", Napi::Function::New(env, AddUdpRedirect));
  exports.Set("udpSends", Napi::Function::New(env, UdpSends));
  return exports;
}

}  // namespace

NODE_API_MODULE(wfp_sim, Init)
