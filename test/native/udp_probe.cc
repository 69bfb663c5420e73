// Test-only: reaches the OS socket of a RedirectUdpSocket, which the package
// never exposes, to put it in states a test needs (Linux). The socket is found
// as the datagram socket of this process bound to the given local port.
//
//   setRecvErr(localPort, family)   IP_RECVERR / IPV6_RECVERR on: ICMP errors
//                                   for its datagrams queue on it, and it polls
//                                   as failed (POLLERR) until they are read
#include <napi.h>

#ifdef __linux__
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#endif

namespace {

Napi::Value Fail(Napi::Env env, const std::string& message) {
  Napi::Error::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

#ifdef __linux__
// The fd of this process's datagram socket bound to `port`, or -1.
int FindUdpSocket(int port) {
  DIR* fds = opendir("/proc/self/fd");
  if (fds == nullptr) return -1;
  int found = -1;
  while (dirent* entry = readdir(fds)) {
    const int fd = std::atoi(entry->d_name);
    if (fd <= 2 || fd == dirfd(fds)) continue;
    int type = 0;
    socklen_t size = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0 || type != SOCK_DGRAM) continue;
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) continue;
    const int bound = local.ss_family == AF_INET    ? ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port)
                      : local.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port)
                                                    : -1;
    if (bound == port) {
      found = fd;
      break;
    }
  }
  closedir(fds);
  return found;
}
#endif

Napi::Value SetRecvErr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef __linux__
  if (!info[0].IsNumber() || !info[1].IsNumber()) return Fail(env, "setRecvErr(localPort, family: 4 | 6)");
  const int fd = FindUdpSocket(info[0].As<Napi::Number>().Int32Value());
  if (fd < 0) return Fail(env, "no datagram socket of this process is bound to that port");
  const int on = 1;
  const bool v6 = info[1].As<Napi::Number>().Int32Value() == 6;
  if (setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_RECVERR : IP_RECVERR, &on, sizeof on) != 0) {
    return Fail(env, "setsockopt(IP_RECVERR) failed");
  }
  return env.Undefined();
#else
  return Fail(env, "setRecvErr is Linux's");
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setRecvErr", Napi::Function::New(env, SetRecvErr));
  return exports;
}

}  // namespace

NODE_API_MODULE(wfp_udp_probe, Init)
