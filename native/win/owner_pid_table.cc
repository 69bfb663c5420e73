// The owner-pid TCP and UDP tables and the process image path
// (native/owner_pid_table.h).
#include "../owner_pid_table.h"

#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <iphlpapi.h>

#include <cstring>
#include <memory>
#include <new>

namespace wfp {
namespace {

void StoreIpv4(DWORD address, DWORD port, Endpoint* out) {
  StoreMappedIpv4(&address, out);
  out->port = ntohs(static_cast<u_short>(port));
  out->scope_id = 0;
}

void StoreIpv6(const UCHAR address[16], DWORD scope, DWORD port, Endpoint* out) {
  std::memcpy(out->address, address, 16);
  out->port = ntohs(static_cast<u_short>(port));
  out->scope_id = scope;
}

// The table, grown to the size Windows asks for (it can grow between calls: a few tries).
template <typename Fetch>
int ReadTable(Fetch fetch, std::unique_ptr<char[]>* table) {
  DWORD size = 16 * 1024;
  for (int attempt = 0; attempt < 5; ++attempt) {
    table->reset(new (std::nothrow) char[size]);
    if (!*table) return ERROR_NOT_ENOUGH_MEMORY;
    DWORD wanted = size;
    const DWORD status = fetch(table->get(), &wanted);
    if (status == NO_ERROR) return 0;
    if (status != ERROR_INSUFFICIENT_BUFFER) return static_cast<int>(status);
    size = wanted + 4096;
  }
  return ERROR_INSUFFICIENT_BUFFER;
}

}  // namespace

bool PlatformHasOwnerPidTables() { return true; }

int OwnerPidRows(bool udp, int family, uint16_t local_port, std::vector<OwnerRow>* out) {
  const ULONG af = family == 6 ? AF_INET6 : AF_INET;
  std::unique_ptr<char[]> table;
  const int status = ReadTable(
      [&](char* buffer, DWORD* size) {
        return udp ? GetExtendedUdpTable(buffer, size, FALSE, af, UDP_TABLE_OWNER_PID, 0)
                   : GetExtendedTcpTable(buffer, size, FALSE, af, TCP_TABLE_OWNER_PID_CONNECTIONS, 0);
      },
      &table);
  if (status != 0) return status;
  OwnerRow row{};
  if (udp && family == 4) {
    const auto* rows = reinterpret_cast<const MIB_UDPTABLE_OWNER_PID*>(table.get());
    for (DWORD i = 0; i < rows->dwNumEntries; ++i) {
      const MIB_UDPROW_OWNER_PID& r = rows->table[i];
      if (ntohs(static_cast<u_short>(r.dwLocalPort)) != local_port) continue;
      row = OwnerRow{};
      StoreIpv4(r.dwLocalAddr, r.dwLocalPort, &row.local);
      row.pid = r.dwOwningPid;
      out->push_back(row);
    }
  } else if (udp) {
    const auto* rows = reinterpret_cast<const MIB_UDP6TABLE_OWNER_PID*>(table.get());
    for (DWORD i = 0; i < rows->dwNumEntries; ++i) {
      const MIB_UDP6ROW_OWNER_PID& r = rows->table[i];
      if (ntohs(static_cast<u_short>(r.dwLocalPort)) != local_port) continue;
      row = OwnerRow{};
      StoreIpv6(r.ucLocalAddr, r.dwLocalScopeId, r.dwLocalPort, &row.local);
      row.pid = r.dwOwningPid;
      out->push_back(row);
    }
  } else if (family == 4) {
    const auto* rows = reinterpret_cast<const MIB_TCPTABLE_OWNER_PID*>(table.get());
    for (DWORD i = 0; i < rows->dwNumEntries; ++i) {
      const MIB_TCPROW_OWNER_PID& r = rows->table[i];
      if (ntohs(static_cast<u_short>(r.dwLocalPort)) != local_port) continue;
      StoreIpv4(r.dwLocalAddr, r.dwLocalPort, &row.local);
      StoreIpv4(r.dwRemoteAddr, r.dwRemotePort, &row.remote);
      row.pid = r.dwOwningPid;
      out->push_back(row);
    }
  } else {
    const auto* rows = reinterpret_cast<const MIB_TCP6TABLE_OWNER_PID*>(table.get());
    for (DWORD i = 0; i < rows->dwNumEntries; ++i) {
      const MIB_TCP6ROW_OWNER_PID& r = rows->table[i];
      if (ntohs(static_cast<u_short>(r.dwLocalPort)) != local_port) continue;
      StoreIpv6(r.ucLocalAddr, r.dwLocalScopeId, r.dwLocalPort, &row.local);
      StoreIpv6(r.ucRemoteAddr, r.dwRemoteScopeId, r.dwRemotePort, &row.remote);
      row.pid = r.dwOwningPid;
      out->push_back(row);
    }
  }
  return 0;
}

int ProcessImagePath(uint32_t pid, std::string* out) {
  HANDLE process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  if (process == nullptr) return static_cast<int>(GetLastError());
  // The longest path Windows has (32,767 UTF-16 units), on the heap.
  constexpr DWORD kMaxPath = 32768;
  std::unique_ptr<wchar_t[]> path(new (std::nothrow) wchar_t[kMaxPath]);
  if (!path) {
    CloseHandle(process);
    return ERROR_NOT_ENOUGH_MEMORY;
  }
  DWORD length = kMaxPath;
  const BOOL ok = QueryFullProcessImageNameW(process, 0, path.get(), &length);
  const DWORD error = ok ? 0 : GetLastError();
  CloseHandle(process);
  if (!ok) return static_cast<int>(error);
  const int bytes = WideCharToMultiByte(CP_UTF8, 0, path.get(), static_cast<int>(length), nullptr, 0, nullptr, nullptr);
  out->assign(static_cast<size_t>(bytes), '\0');
  WideCharToMultiByte(CP_UTF8, 0, path.get(), static_cast<int>(length), &(*out)[0], bytes, nullptr, nullptr);
  return 0;
}

}  // namespace wfp
