// The addon's side of lib/process/: the OS queries, with terse checks at the
// JS boundary (lib/ validates what users pass). Linux: sock_diag on the JS
// thread (one netlink round trip), the /proc scan on the threadpool (it reads
// many links). Windows: the owner-pid tables and the image path.
#include "process_binding.h"

#include <string>
#include <vector>

#include "js_errors.h"
#include "owner_pid_table.h"
#include "socket_lookup.h"
#include "socket_owner.h"

namespace wfp {
namespace {

bool ReadEndpointArgs(const Napi::CallbackInfo& info, size_t index, Endpoint* out) {
  if (!info[index].IsString() || !info[index + 1].IsNumber()) return false;
  return ParseEndpoint(info[index].As<Napi::String>(), info[index + 1].As<Napi::Number>().DoubleValue(), out);
}

bool ReadCount(const Napi::Value& value, double least, double most, double* out) {
  if (!value.IsNumber()) return false;
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= least && number <= most) || number != static_cast<double>(static_cast<int64_t>(number))) return false;
  *out = number;
  return true;
}

// socketIdentity(udp, localAddress, localPort, remoteAddress, remotePort): { inode, uid } | null
Napi::Value SocketIdentityFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Endpoint local, remote;
  if (!info[0].IsBoolean() || !ReadEndpointArgs(info, 1, &local) || !ReadEndpointArgs(info, 3, &remote)) {
    ThrowArgumentError(env, true, "Expected (udp, localAddress, localPort, remoteAddress, remotePort)");
    return env.Undefined();
  }
  SocketIdentity identity{};
  int error = 0;
  switch (FindSocketIdentity(info[0].As<Napi::Boolean>(), local, remote, &identity, &error)) {
    case DiagResult::kFound: {
      Napi::Object result = Napi::Object::New(env);
      result.Set("inode", identity.inode);
      result.Set("uid", identity.uid);
      return result;
    }
    case DiagResult::kNotFound:
      return env.Null();
    case DiagResult::kError:
      break;
  }
  ThrowSystemError(env, error, "sock_diag", "the sock_diag query (NETLINK_SOCK_DIAG)", "the process behind the connection is unknown");
  return env.Undefined();
}

// holdsSocket(pid, fd, inode): boolean
Napi::Value HoldsSocketFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double pid, fd, inode;
  if (!ReadCount(info[0], 1, 4194304, &pid) || !ReadCount(info[1], 0, 2147483647, &fd) || !ReadCount(info[2], 1, 4294967295.0, &inode)) {
    ThrowArgumentError(env, true, "Expected (pid, fd, inode) as whole numbers");
    return env.Undefined();
  }
  return Napi::Boolean::New(env, HoldsSocket(static_cast<int>(pid), static_cast<int>(fd), static_cast<uint32_t>(inode)));
}

// The /proc scan, off the JS thread.
class HolderScan : public Napi::AsyncWorker {
 public:
  HolderScan(Napi::Env env, uint32_t inode, uint32_t uid, std::vector<int> preferred, uint32_t budget)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), inode_(inode), uid_(uid),
        preferred_(std::move(preferred)), budget_(budget) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { scan_ = FindSocketHolder(inode_, uid_, preferred_, budget_); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("pid", scan_.pid);
    result.Set("fd", scan_.fd);
    result.Set("examined", scan_.examined);
    result.Set("exhausted", scan_.exhausted);
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  uint32_t inode_, uid_;
  std::vector<int> preferred_;
  uint32_t budget_;
  OwnerScan scan_;
};

// findSocketHolder(inode, uid, preferred: number[], budget): Promise<{ pid, fd, examined, exhausted }>
Napi::Value FindSocketHolderFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double inode, uid, budget;
  if (!ReadCount(info[0], 1, 4294967295.0, &inode) || !ReadCount(info[1], 0, 4294967295.0, &uid) || !info[2].IsArray() ||
      !ReadCount(info[3], 1, 4294967295.0, &budget)) {
    ThrowArgumentError(env, true, "Expected (inode, uid, preferred pids, budget)");
    return env.Undefined();
  }
  Napi::Array list = info[2].As<Napi::Array>();
  std::vector<int> preferred;
  for (uint32_t i = 0; i < list.Length() && i < 64; ++i) {
    double pid;
    if (ReadCount(list.Get(i), 1, 4194304, &pid)) preferred.push_back(static_cast<int>(pid));
  }
  auto* worker = new HolderScan(env, static_cast<uint32_t>(inode), static_cast<uint32_t>(uid), std::move(preferred),
                                static_cast<uint32_t>(budget));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// ownerPidRows(udp, family, localPort): [{ localAddress, localPort, remoteAddress, remotePort, pid }]
Napi::Value OwnerPidRowsFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double family, port;
  if (!info[0].IsBoolean() || !ReadCount(info[1], 4, 6, &family) || (family != 4 && family != 6) || !ReadCount(info[2], 0, 65535, &port)) {
    ThrowArgumentError(env, true, "Expected (udp, family 4 or 6, localPort)");
    return env.Undefined();
  }
  const bool udp = info[0].As<Napi::Boolean>();
  std::vector<OwnerRow> rows;
  const int error = OwnerPidRows(udp, static_cast<int>(family), static_cast<uint16_t>(port), &rows);
  if (error != 0) {
    ThrowSystemError(env, error, udp ? "GetExtendedUdpTable" : "GetExtendedTcpTable", udp ? "GetExtendedUdpTable" : "GetExtendedTcpTable",
                     "the process behind the connection is unknown");
    return env.Undefined();
  }
  Napi::Array result = Napi::Array::New(env, rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    Napi::Object row = Napi::Object::New(env);
    row.Set("localAddress", FormatAddress(rows[i].local));
    row.Set("localPort", rows[i].local.port);
    if (!udp) {
      row.Set("remoteAddress", FormatAddress(rows[i].remote));
      row.Set("remotePort", rows[i].remote.port);
    }
    row.Set("pid", rows[i].pid);
    result.Set(static_cast<uint32_t>(i), row);
  }
  return result;
}

// processImagePath(pid): string | null (gone, or not ours to open)
Napi::Value ProcessImagePathFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double pid;
  if (!ReadCount(info[0], 0, 4294967295.0, &pid)) {
    ThrowArgumentError(env, true, "Expected a process id");
    return env.Undefined();
  }
  std::string path;
  if (ProcessImagePath(static_cast<uint32_t>(pid), &path) != 0) return env.Null();
  return Napi::String::New(env, path);
}

}  // namespace

void InitProcessLookup(Napi::Env env, Napi::Object exports) {
  exports.Set("hasSocketDiag", Napi::Boolean::New(env, PlatformHasSocketDiag()));
  exports.Set("hasOwnerPidTables", Napi::Boolean::New(env, PlatformHasOwnerPidTables()));
  exports.Set("socketIdentity", Napi::Function::New(env, SocketIdentityFn));
  exports.Set("holdsSocket", Napi::Function::New(env, HoldsSocketFn));
  exports.Set("findSocketHolder", Napi::Function::New(env, FindSocketHolderFn));
  exports.Set("ownerPidRows", Napi::Function::New(env, OwnerPidRowsFn));
  exports.Set("processImagePath", Napi::Function::New(env, ProcessImagePathFn));
}

}  // namespace wfp
