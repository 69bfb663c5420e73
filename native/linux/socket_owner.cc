// sock_diag for the socket of an exact 4-tuple, and /proc for the process
// holding it (native/socket_owner.h).
#include "../socket_owner.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace wfp {
namespace {

constexpr uint8_t kTcpListen = 10;  // TCP_LISTEN in the kernel's state numbering

// Closes a descriptor on every way out.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

void PutAddress(const Endpoint& endpoint, bool ipv4, __be32 out[4]) {
  std::memset(out, 0, 16);
  if (ipv4) std::memcpy(out, endpoint.address + 12, 4);
  else std::memcpy(out, endpoint.address, 16);
}

bool SameAddress(const __be32 got[4], const Endpoint& endpoint, bool ipv4) {
  return ipv4 ? std::memcmp(got, endpoint.address + 12, 4) == 0 : std::memcmp(got, endpoint.address, 16) == 0;
}

bool IsAny(const __be32 got[4], bool ipv4) {
  static const uint8_t zero[16] = {};
  return std::memcmp(got, zero, ipv4 ? 4 : 16) == 0;
}

// What the kernel answered is the socket asked for: for TCP exactly that
// connection (inet_lookup falls back to a listener on the local endpoint, which
// is not the client's socket); for UDP a socket on the local port whose bound
// address and connected peer, where it has them, are the ones asked.
bool IsTheSocket(const inet_diag_msg& msg, bool udp, const Endpoint& local, const Endpoint& remote, bool ipv4) {
  const inet_diag_sockid& id = msg.id;
  if (ntohs(id.idiag_sport) != local.port) return false;
  if (!udp) {
    return msg.idiag_state != kTcpListen && ntohs(id.idiag_dport) == remote.port && SameAddress(id.idiag_src, local, ipv4) &&
           SameAddress(id.idiag_dst, remote, ipv4);
  }
  if (!IsAny(id.idiag_src, ipv4) && !SameAddress(id.idiag_src, local, ipv4)) return false;
  if (id.idiag_dport == 0) return true;  // not connected
  return ntohs(id.idiag_dport) == remote.port && SameAddress(id.idiag_dst, remote, ipv4);
}

}  // namespace

bool PlatformHasSocketDiag() { return true; }

DiagResult FindSocketIdentity(bool udp, const Endpoint& local, const Endpoint& remote, SocketIdentity* out, int* error) {
  const bool ipv4 = IsMappedIpv4(local);
  if (ipv4 != IsMappedIpv4(remote)) {
    *error = 0;
    return DiagResult::kNotFound;  // no socket has one end in each family
  }
  Fd netlink{socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
  if (netlink.fd < 0) {
    *error = errno;
    return DiagResult::kError;
  }
  // The answer to a single lookup is queued before sendmsg returns; the timeout only bounds a kernel that never answers.
  timeval timeout{0, 200 * 1000};
  setsockopt(netlink.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST;  // one socket, not a dump
  message.header.nlmsg_seq = 1;
  inet_diag_req_v2& request = message.request;
  request.sdiag_family = ipv4 ? AF_INET : AF_INET6;
  request.sdiag_protocol = udp ? IPPROTO_UDP : IPPROTO_TCP;
  request.idiag_states = ~0u;
  request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  // TCP's single lookup (inet_diag_find_one_icsk) reads src as the local end.
  // UDP's (udp_dump_one) hands src and dst to the receive path's lookup in the
  // order of an arriving datagram, "swapped for historical reasons" as the
  // kernel says: src is the peer there.
  const Endpoint& src = udp ? remote : local;
  const Endpoint& dst = udp ? local : remote;
  request.id.idiag_sport = htons(src.port);
  request.id.idiag_dport = htons(dst.port);
  PutAddress(src, ipv4, request.id.idiag_src);
  PutAddress(dst, ipv4, request.id.idiag_dst);

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(netlink.fd, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    *error = errno;
    return DiagResult::kError;
  }
  alignas(nlmsghdr) char buffer[8192];
  const ssize_t got = recv(netlink.fd, buffer, sizeof buffer, 0);
  if (got < 0) {
    *error = errno;
    return DiagResult::kError;
  }
  *error = 0;
  int remaining = static_cast<int>(got);
  for (nlmsghdr* header = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(header, remaining); header = NLMSG_NEXT(header, remaining)) {
    if (header->nlmsg_type == NLMSG_ERROR) {
      if (header->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return DiagResult::kNotFound;
      const int code = -static_cast<const nlmsgerr*>(NLMSG_DATA(header))->error;
      // ENOENT: no such socket. Anything else (a kernel without UDP's diag module: EINVAL/ENOENT) is an error to report.
      if (code == ENOENT || code == 0) return DiagResult::kNotFound;
      *error = code;
      return DiagResult::kError;
    }
    if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY || header->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
    const inet_diag_msg* msg = static_cast<const inet_diag_msg*>(NLMSG_DATA(header));
    if (msg->idiag_inode == 0 || !IsTheSocket(*msg, udp, local, remote, ipv4)) return DiagResult::kNotFound;
    out->inode = msg->idiag_inode;
    out->uid = msg->idiag_uid;
    return DiagResult::kFound;
  }
  return DiagResult::kNotFound;
}

namespace {

// "socket:[INODE]", as /proc/<pid>/fd/<n> links to a socket.
std::string SocketLink(uint32_t inode) { return "socket:[" + std::to_string(inode) + "]"; }

bool IsDigits(const char* name) {
  if (*name == '\0') return false;
  for (; *name; ++name) {
    if (*name < '0' || *name > '9') return false;
  }
  return true;
}

// Reads process `pid`'s descriptors for `link`, within the budget.
bool ScanProcess(int pid, const std::string& link, uint32_t budget, OwnerScan* scan) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/fd", pid);
  DIR* dir = opendir(path);
  if (dir == nullptr) return false;  // gone, or not ours to read
  const int dir_fd = dirfd(dir);
  char target[64];
  bool found = false;
  while (const dirent* entry = readdir(dir)) {
    if (!IsDigits(entry->d_name)) continue;
    if (scan->examined >= budget) {
      scan->exhausted = true;
      break;
    }
    ++scan->examined;
    const ssize_t length = readlinkat(dir_fd, entry->d_name, target, sizeof target);
    if (length != static_cast<ssize_t>(link.size()) || std::memcmp(target, link.data(), link.size()) != 0) continue;
    scan->pid = pid;
    scan->fd = std::atoi(entry->d_name);
    found = true;
    break;
  }
  closedir(dir);
  return found;
}

}  // namespace

bool HoldsSocket(int pid, int fd, uint32_t inode) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
  char target[64];
  const std::string link = SocketLink(inode);
  const ssize_t length = readlink(path, target, sizeof target);
  return length == static_cast<ssize_t>(link.size()) && std::memcmp(target, link.data(), link.size()) == 0;
}

OwnerScan FindSocketHolder(uint32_t inode, uint32_t uid, const std::vector<int>& preferred, uint32_t budget) {
  OwnerScan scan;
  const std::string link = SocketLink(inode);
  for (int pid : preferred) {
    if (pid > 0 && ScanProcess(pid, link, budget, &scan)) return scan;
    if (scan.exhausted) return scan;
  }
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return scan;
  std::vector<int> others;
  const int proc_fd = dirfd(proc);
  while (const dirent* entry = readdir(proc)) {
    if (!IsDigits(entry->d_name)) continue;
    const int pid = std::atoi(entry->d_name);
    bool seen = false;
    for (int done : preferred) seen = seen || done == pid;
    if (seen) continue;
    // The socket's owner uid is its creator's: that user's processes first.
    // statx rather than fstatat: glibc exports fstatat only from 2.33, past the prebuilds' floor (2.28).
    struct statx info;
    if (statx(proc_fd, entry->d_name, 0, STATX_UID, &info) != 0) continue;
    if (info.stx_uid != uid) {
      others.push_back(pid);
      continue;
    }
    if (ScanProcess(pid, link, budget, &scan) || scan.exhausted) break;
  }
  closedir(proc);
  if (scan.pid != 0 || scan.exhausted) return scan;
  for (int pid : others) {
    if (ScanProcess(pid, link, budget, &scan) || scan.exhausted) break;
  }
  return scan;
}

}  // namespace wfp
