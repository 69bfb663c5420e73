/*
 * Run by scripts/test-arm64.js, cross-built for arm64 and run under qemu-user:
 * which of the socket options the addon's Linux paths use does qemu hand to
 * the kernel? qemu-user translates each option it knows and answers
 * ENOPROTOOPT itself for the others ("Unsupported setsockopt level=%d
 * optname=%d" under -d unimp), so the kernel never sees them. The kernel never
 * answers ENOPROTOOPT for these on a socket of the right family (as root:
 * 0, or ENOENT for an original destination on an unconnected socket).
 * And the process lookup's sock_diag socket: qemu-user 7.2 creates netlink
 * sockets of the protocols it translates only (NETLINK_ROUTE, _KOBJECT_UEVENT,
 * _AUDIT) and answers EPROTONOSUPPORT itself for NETLINK_SOCK_DIAG (strace of
 * qemu shows no socket() call); the kernel always has sock_diag (0).
 * Prints one line per option: its name and 0, ENOPROTOOPT, EPROTONOSUPPORT,
 * or another errno.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* <linux/netfilter_ipv4.h> SO_ORIGINAL_DST, <linux/netfilter_ipv6/ip6_tables.h> IP6T_SO_ORIGINAL_DST. */
#define ORIGINAL_DST 80

static void report(const char *name, int result) {
  if (result == 0) printf("%s 0\n", name);
  else if (errno == ENOPROTOOPT) printf("%s ENOPROTOOPT\n", name);
  else if (errno == EPROTONOSUPPORT) printf("%s EPROTONOSUPPORT\n", name);
  else printf("%s errno %d (%s)\n", name, errno, strerror(errno));
}

static int set(int fd, int level, int option, int value) {
  return setsockopt(fd, level, option, &value, sizeof value);
}

/* The socket lib/process/ asks for an exact 4-tuple's socket (native/linux/socket_owner.cc). */
static int sock_diag(void) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

static int original(int fd, int level) {
  struct sockaddr_in6 address;
  socklen_t length = sizeof address;
  return getsockopt(fd, level, ORIGINAL_DST, &address, &length);
}

int main(void) {
  int tcp4 = socket(AF_INET, SOCK_STREAM, 0), tcp6 = socket(AF_INET6, SOCK_STREAM, 0);
  int udp4 = socket(AF_INET, SOCK_DGRAM, 0), udp6 = socket(AF_INET6, SOCK_DGRAM, 0);
  if (tcp4 < 0 || tcp6 < 0 || udp4 < 0 || udp6 < 0) {
    perror("socket");
    return 1;
  }
  report("IP_TRANSPARENT", set(udp4, SOL_IP, IP_TRANSPARENT, 1));
  report("IP_RECVORIGDSTADDR", set(udp4, SOL_IP, IP_RECVORIGDSTADDR, 1));
  report("IPV6_TRANSPARENT", set(udp6, SOL_IPV6, IPV6_TRANSPARENT, 1));
  report("IPV6_RECVORIGDSTADDR", set(udp6, SOL_IPV6, IPV6_RECVORIGDSTADDR, 1));
  report("SO_MARK", set(tcp4, SOL_SOCKET, SO_MARK, 1));
  report("SO_ORIGINAL_DST", original(tcp4, SOL_IP));
  report("IP6T_SO_ORIGINAL_DST", original(tcp6, SOL_IPV6));
  report("NETLINK_SOCK_DIAG", sock_diag());
  return 0;
}
