// wfp_sim.node, a test-only Windows addon: a simulated WFP redirect service
// under the unmodified production wfp_redirect.node. It patches that module's
// import table entry for WS2_32!WSAIoctl and answers the three WFP redirect
// control codes itself; every other control code goes to the real WSAIoctl.
// Nothing of it is in the production addon or in the package.
//
//   install(moduleName)   patches the import of the loaded module (e.g. "wfp_redirect.node")
//   uninstall()           puts the real WSAIoctl back
//   redirect(peerAddress, peerPort, records, context)
//                         a redirected connection, named by what getpeername
//                         reports for its accepted socket (the client's end)
//   tooSmall(mode)        how a query with a short buffer is answered:
//                         'ERROR_INSUFFICIENT_BUFFER' (with the size, the default),
//                         'WSAEINVAL' (0 bytes) or 'WSAEFAULT' (with the size)
//   reset()               forgets redirects, sets and counts
//   sets()                every SIO_SET_..._RECORDS: { socket, records, connectedAtSet,
//                         and the socket's endpoints as the OS reports them now }
//   calls()               { queryRecords, queryContext, setRecords, shortBuffer }
//
// A query on a socket with no redirect answers WSAEINVAL, as a stack without
// redirect data for the socket does. Everything runs on the JS thread that
// calls the production addon; the state is process-wide, like the import table.
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <napi.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace {

using WsaIoctlFunction = int(WSAAPI*)(SOCKET, DWORD, LPVOID, DWORD, LPVOID, DWORD, LPDWORD, LPWSAOVERLAPPED,
                                      LPWSAOVERLAPPED_COMPLETION_ROUTINE);

constexpr DWORD kQueryRecords = 0x980000DC;
constexpr DWORD kQueryContext = 0x980000DD;
constexpr DWORD kSetRecords = 0x980000DE;

struct PeerKey {
  std::string address;  // inet_ntop of the peer, IPv4-mapped IPv6 as dotted IPv4
  uint16_t port;
  bool operator<(const PeerKey& other) const { return std::tie(address, port) < std::tie(other.address, other.port); }
};

struct Redirect {
  std::vector<uint8_t> records;
  std::vector<uint8_t> context;
};

struct SetCall {
  SOCKET socket;
  std::vector<uint8_t> records;
  bool connected_at_set;
};

enum class TooSmall { kInsufficientBuffer, kInvalid, kFault };

struct Simulation {
  WsaIoctlFunction real = nullptr;
  void** slot = nullptr;  // the patched import table entry
  std::map<PeerKey, Redirect> redirects;
  std::vector<SetCall> sets;
  TooSmall too_small = TooSmall::kInsufficientBuffer;
  double query_records = 0, query_context = 0, set_records = 0, short_buffer = 0;
};

Simulation sim;

// getsockname / getpeername as text and port; false when the call fails.
bool EndpointOf(SOCKET socket, bool peer, std::string* address, uint16_t* port) {
  sockaddr_storage storage{};
  int length = sizeof storage;
  sockaddr* raw = reinterpret_cast<sockaddr*>(&storage);
  if ((peer ? getpeername(socket, raw, &length) : getsockname(socket, raw, &length)) != 0) return false;
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

int Fail(int error, LPDWORD returned, DWORD bytes) {
  if (returned != nullptr) *returned = bytes;
  WSASetLastError(error);
  return SOCKET_ERROR;
}

int WSAAPI SimulatedIoctl(SOCKET socket, DWORD code, LPVOID in, DWORD in_size, LPVOID out, DWORD out_size,
                          LPDWORD returned, LPWSAOVERLAPPED overlapped,
                          LPWSAOVERLAPPED_COMPLETION_ROUTINE completion) {
  if (code != kQueryRecords && code != kQueryContext && code != kSetRecords) {
    return sim.real(socket, code, in, in_size, out, out_size, returned, overlapped, completion);
  }
  if (code == kSetRecords) {
    ++sim.set_records;
    if (in == nullptr || in_size == 0) return Fail(WSAEINVAL, returned, 0);
    const uint8_t* bytes = static_cast<const uint8_t*>(in);
    std::string ignored;
    uint16_t port = 0;
    sim.sets.push_back({socket, std::vector<uint8_t>(bytes, bytes + in_size), EndpointOf(socket, true, &ignored, &port)});
    if (returned != nullptr) *returned = 0;
    return 0;
  }
  (code == kQueryRecords ? sim.query_records : sim.query_context) += 1;
  PeerKey key;
  if (!EndpointOf(socket, true, &key.address, &key.port)) return Fail(WSAENOTCONN, returned, 0);
  const auto found = sim.redirects.find(key);
  if (found == sim.redirects.end()) return Fail(WSAEINVAL, returned, 0);
  const std::vector<uint8_t>& blob = code == kQueryRecords ? found->second.records : found->second.context;
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

// The import table entry of `module` through which it calls WS2_32!WSAIoctl,
// found by name (or, for an import by ordinal, by the address it holds).
void** FindWsaIoctlImport(HMODULE module, WsaIoctlFunction real) {
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
      bool match = reinterpret_cast<void*>(slots->u1.Function) == reinterpret_cast<void*>(real);
      if (!match && entry->OriginalFirstThunk != 0 && !IMAGE_SNAP_BY_ORDINAL(names->u1.Ordinal)) {
        const auto* by_name = reinterpret_cast<const IMAGE_IMPORT_BY_NAME*>(base + names->u1.AddressOfData);
        match = std::strcmp(reinterpret_cast<const char*>(by_name->Name), "WSAIoctl") == 0;
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
  // Through void*: FARPROC is a generic function type, WSAIoctl has its own.
  auto real = reinterpret_cast<WsaIoctlFunction>(
      reinterpret_cast<void*>(GetProcAddress(GetModuleHandleW(L"ws2_32.dll"), "WSAIoctl")));
  void** slot = FindWsaIoctlImport(module, real);
  if (slot == nullptr) return Throw(env, "the module does not import WS2_32!WSAIoctl");
  sim.real = reinterpret_cast<WsaIoctlFunction>(*slot);
  if (!WriteSlot(slot, reinterpret_cast<void*>(&SimulatedIoctl))) return Throw(env, "VirtualProtect failed");
  sim.slot = slot;
  return env.Undefined();
}

Napi::Value Uninstall(const Napi::CallbackInfo& info) {
  if (sim.slot != nullptr) {
    WriteSlot(sim.slot, reinterpret_cast<void*>(sim.real));
    sim.slot = nullptr;
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
  sim.redirects[key] = {BytesOf(info[2]), BytesOf(info[3])};
  return env.Undefined();
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
  sim.sets.clear();
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
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("install", Napi::Function::New(env, Install));
  exports.Set("uninstall", Napi::Function::New(env, Uninstall));
  exports.Set("redirect", Napi::Function::New(env, AddRedirect));
  exports.Set("tooSmall", Napi::Function::New(env, SetTooSmall));
  exports.Set("reset", Napi::Function::New(env, Reset));
  exports.Set("sets", Napi::Function::New(env, Sets));
  exports.Set("calls", Napi::Function::New(env, Calls));
  return exports;
}

}  // namespace

NODE_API_MODULE(wfp_sim, Init)
