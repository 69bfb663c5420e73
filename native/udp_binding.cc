// binding.UdpSocket: a UDP socket on this thread's event loop. A uv_poll on
// the OS socket says when datagrams wait; each is read with its control
// messages (native/udp_socket.h) and handed to JS with the redirect data that
// came with it. No thread, nothing blocks: the socket is non-blocking.
//
//   new UdpSocket(family, transparent, onMessage, onError)
//   bind(address, port)     and start receiving
//   address()               { address, port, family }
//   send(data, address, port, records?, fromAddress?, fromPort?)
//   close()                 idempotent; the OS socket closes once libuv lets go of it
//   setMark(mark)           SO_MARK (Linux)
//   ref() / unref()         whether it keeps the event loop alive
//   stats()                 { received, truncated, malformedControl }
//
// onMessage(data, address, port, records?, context?, destinationAddress?, destinationPort?)
// onError(error)
#include "udp_binding.h"

#include <uv.h>

#include <memory>
#include <string>

#include "js_args.h"
#include "js_errors.h"
#include "socket_lookup.h"
#include "socket_mark.h"
#include "udp_socket.h"

namespace wfp {
namespace {

// At most this many datagrams per wake-up, so that one busy socket does not
// starve the rest of the loop; the poll fires again for the others.
constexpr int kDatagramsPerWakeUp = 64;

class UdpSocketWrap;

// Shared by every socket of this thread (native/udp_socket.h).
thread_local ReceiveBuffers receive_buffers;

// Outlives the wrap when needed: libuv owns it from uv_close to its callback,
// and the OS socket is closed only then (libuv must let go of it first).
struct PollHandle {
  uv_poll_t handle;
  UdpSocketWrap* owner;
  OsSocket socket;
  bool close_socket;
};

// An address and port from JS: an IP address, port from `least` to 65535.
bool ReadEndpoint(Napi::Env env, Napi::Value address, Napi::Value port, int least, Endpoint* out) {
  if (!address.IsString() || !port.IsNumber()) {
    ThrowArgumentError(env, true, "Expected an address string and a port number");
    return false;
  }
  const std::string text = address.As<Napi::String>();
  const double number = port.As<Napi::Number>().DoubleValue();
  if (!(number >= least && number <= 65535) || number != static_cast<double>(static_cast<int>(number))) {
    ThrowArgumentError(env, false, "The port must be an integer from " + std::to_string(least) + " to 65535");
    return false;
  }
  if (!ParseEndpoint(text, 1, out)) {
    ThrowArgumentError(env, false, "Not an IP address: " + text);
    return false;
  }
  out->port = static_cast<uint16_t>(number);
  return true;
}

Napi::Object DescribeEndpoint(Napi::Env env, const Endpoint& endpoint) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("address", FormatAddress(endpoint));
  result.Set("port", endpoint.port);
  result.Set("family", IsMappedIpv4(endpoint) ? "IPv4" : "IPv6");
  return result;
}

class UdpSocketWrap : public Napi::ObjectWrap<UdpSocketWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UdpSocket",
                       {InstanceMethod("bind", &UdpSocketWrap::Bind),
                        InstanceMethod("address", &UdpSocketWrap::Address),
                        InstanceMethod("send", &UdpSocketWrap::Send),
                        InstanceMethod("close", &UdpSocketWrap::Close),
                        InstanceMethod("setMark", &UdpSocketWrap::SetMark),
                        InstanceMethod("ref", &UdpSocketWrap::Ref),
                        InstanceMethod("unref", &UdpSocketWrap::Unref),
                        InstanceMethod("stats", &UdpSocketWrap::Stats)});
  }

  explicit UdpSocketWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpSocketWrap>(info) {
    Napi::Env env = info.Env();
    const double family = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
    if ((family != 4 && family != 6) || !info[1].IsBoolean() || !info[2].IsFunction() || !info[3].IsFunction()) {
      ThrowArgumentError(env, true, "Expected (family: 4 | 6, transparent: boolean, onMessage, onError)");
      return;
    }
    const char* syscall = "socket";
    const int error = OpenUdpSocket(static_cast<int>(family), info[1].As<Napi::Boolean>(), &socket_, &syscall);
    if (error != 0) {
      ThrowSystemError(env, error, syscall, syscall,
                       info[1].As<Napi::Boolean>() ? "a transparent socket needs CAP_NET_ADMIN (run as root, or "
                                                     "setcap cap_net_admin+ep on the node binary)"
                                                   : "could not create the UDP socket");
      return;
    }
    on_message_ = Napi::Persistent(info[2].As<Napi::Function>());
    on_error_ = Napi::Persistent(info[3].As<Napi::Function>());
    async_ = std::make_unique<Napi::AsyncContext>(env, "WfpRedirectUdpSocket", info.This().As<Napi::Object>());
    napi_add_env_cleanup_hook(env, CleanUp, this);
    cleanup_hook_ = true;
  }

  ~UdpSocketWrap() override { Shutdown(); }

 private:
  static void CleanUp(void* self) {
    auto* wrap = static_cast<UdpSocketWrap*>(self);
    wrap->cleanup_hook_ = false;  // Node removes a hook as it runs it
    wrap->Shutdown();
  }

  // Stops receiving and closes the socket; safe to call more than once.
  void Shutdown() {
    if (cleanup_hook_) {
      napi_remove_env_cleanup_hook(Env(), CleanUp, this);
      cleanup_hook_ = false;
    }
    if (poll_ != nullptr) {
      uv_poll_stop(&poll_->handle);
      poll_->owner = nullptr;
      poll_->socket = socket_.socket;
      poll_->close_socket = socket_.open;
      socket_.open = false;
      uv_close(reinterpret_cast<uv_handle_t*>(&poll_->handle), [](uv_handle_t* handle) {
        auto* poll = reinterpret_cast<PollHandle*>(handle);
        if (poll->close_socket) CloseOsSocket(poll->socket);
        delete poll;
      });
      poll_ = nullptr;
    }
    CloseUdpSocket(socket_);
    if (holds_self_) {
      holds_self_ = false;
      ObjectWrap::Unref();
    }
  }

  bool EnsureOpen(Napi::Env env) {
    if (socket_.open) return true;
    ThrowWfpError(env, "ERR_SOCKET_DGRAM_NOT_RUNNING", "The UDP socket is closed", Napi::Object::New(env));
    return false;
  }

  Napi::Value Bind(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Endpoint local;
    if (!EnsureOpen(env) || !ReadEndpoint(env, info[0], info[1], 0, &local)) return env.Undefined();
    if (poll_ != nullptr) {
      ThrowWfpError(env, "ERR_SOCKET_ALREADY_BOUND", "The UDP socket is already bound", Napi::Object::New(env));
      return env.Undefined();
    }
    int error = BindUdpSocket(socket_, local);
    if (error != 0) {
      ThrowSystemError(env, error, "bind", "bind", nullptr);
      return env.Undefined();
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    auto* poll = new PollHandle{{}, this, socket_.socket, false};
    error = uv_poll_init_socket(loop, &poll->handle, static_cast<uv_os_sock_t>(socket_.socket));
    if (error != 0) {
      delete poll;
      ThrowWfpError(env, "ERR_WFP_UDP_POLL", std::string("libuv cannot poll the UDP socket: ") + uv_strerror(error),
                    Napi::Object::New(env));
      return env.Undefined();
    }
    poll_ = poll;
    uv_poll_start(&poll_->handle, UV_READABLE, OnReadable);
    if (!loop_ref_) uv_unref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
    // Kept from garbage collection while it can receive; close() lets go.
    ObjectWrap::Ref();
    holds_self_ = true;
    return env.Undefined();
  }

  Napi::Value Address(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Endpoint local;
    if (!EnsureOpen(env)) return env.Undefined();
    if (!UdpLocalEndpoint(socket_, &local)) {
      ThrowWfpError(env, "ERR_SOCKET_DGRAM_NOT_BOUND", "The UDP socket is not bound", Napi::Object::New(env));
      return env.Undefined();
    }
    return DescribeEndpoint(env, local);
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!EnsureOpen(env)) return env.Undefined();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      ThrowArgumentError(env, true, "The datagram must be a Uint8Array");
      return env.Undefined();
    }
    Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
    Endpoint to, from;
    if (!ReadEndpoint(env, info[1], info[2], 1, &to)) return env.Undefined();
    Napi::Uint8Array records;
    const bool has_records = !info[3].IsUndefined();
    if (has_records && !ReadRecords(info, 3, &records)) return env.Undefined();
    const bool has_from = !info[4].IsUndefined();
    if (has_from && !ReadEndpoint(env, info[4], info[5], 1, &from)) return env.Undefined();
    const char* syscall = "sendmsg";
    const int error = SendDatagram(socket_, data.Data(), data.ByteLength(), to,
                                   has_records ? records.Data() : nullptr, has_records ? records.ByteLength() : 0,
                                   has_from ? &from : nullptr, &syscall);
    if (error != 0) ThrowSystemError(env, error, syscall, syscall, nullptr);
    return env.Undefined();
  }

  Napi::Value SetMark(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t mark = 0;
    if (!EnsureOpen(env) || !ReadMark(info, 0, &mark)) return env.Undefined();
    const int error = SetSocketMark(socket_.socket, mark);
    if (error != 0) {
      ThrowSystemError(env, error, "setsockopt", "setsockopt(SO_MARK)",
                       "marking sockets needs CAP_NET_ADMIN (run as root, or setcap cap_net_admin+ep on the node binary)");
    }
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    loop_ref_ = true;
    if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    loop_ref_ = false;
    if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object result = Napi::Object::New(info.Env());
    result.Set("received", received_);
    result.Set("truncated", truncated_);
    result.Set("malformedControl", malformed_control_);
    return result;
  }

  static void OnReadable(uv_poll_t* handle, int status, int) {
    UdpSocketWrap* self = reinterpret_cast<PollHandle*>(handle)->owner;
    if (self != nullptr) self->Drain(status);
  }

  // Calls a JS callback from the event loop; an exception it throws becomes
  // the process's uncaught exception, as it would from a dgram listener. Raw
  // Node-API here: when the thread is being stopped (a worker's
  // process.exit() in the listener) JS cannot run, and node-addon-api would
  // turn the failed call into a fatal error; napi_fatal_exception then
  // declines, harmlessly. Returns false when the callback did not complete.
  bool Call(Napi::FunctionReference& callback, const std::initializer_list<napi_value>& args) {
    napi_env env = Env();
    napi_value result = nullptr;
    const napi_status status =
        napi_make_callback(env, *async_, Value(), callback.Value(), args.size(), args.begin(), &result);
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value error = nullptr;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok && error != nullptr) {
        napi_fatal_exception(env, error);
      }
      return false;
    }
    return status == napi_ok;
  }

  void Drain(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      Napi::Object fields = Napi::Object::New(env);
      ThrowWfpError(env, uv_err_name(status), std::string("polling the UDP socket failed: ") + uv_strerror(status), fields);
      Call(on_error_, {env.GetAndClearPendingException().Value()});
      return;
    }
    for (int i = 0; i < kDatagramsPerWakeUp && socket_.open; ++i) {
      Napi::HandleScope each(env);
      ReceivedDatagram datagram;
      if (receive_buffers.data.empty()) PrepareReceiveBuffers(&receive_buffers);
      const int error = ReceiveDatagram(socket_, receive_buffers, &datagram);
      if (error == kWouldBlock) return;
      if (error != 0) {
        ThrowSystemError(env, error, "recvmsg", "receiving a datagram", nullptr);
        Call(on_error_, {env.GetAndClearPendingException().Value()});
        return;
      }
      ++received_;
      malformed_control_ += static_cast<double>(datagram.malformed_control);
      if (datagram.truncated) {
        ++truncated_;  // never handed on incomplete
        continue;
      }
      auto copy = [env](const uint8_t* bytes, size_t size) -> napi_value {
        if (bytes == nullptr) return env.Undefined();
        return Napi::Buffer<uint8_t>::Copy(env, bytes, size);
      };
      const bool has_destination = datagram.has_original_destination;
      if (!Call(on_message_,
                {Napi::Buffer<uint8_t>::Copy(env, receive_buffers.data.data(), datagram.size),
                 Napi::String::New(env, FormatAddress(datagram.sender)), Napi::Number::New(env, datagram.sender.port),
                 copy(datagram.records, datagram.records_size), copy(datagram.context, datagram.context_size),
                 has_destination ? Napi::String::New(env, FormatAddress(datagram.original_destination)) : env.Undefined(),
                 has_destination ? Napi::Number::New(env, datagram.original_destination.port) : env.Undefined()})) {
        return;
      }
    }
  }

  UdpSocket socket_;
  PollHandle* poll_ = nullptr;
  Napi::FunctionReference on_message_;
  Napi::FunctionReference on_error_;
  std::unique_ptr<Napi::AsyncContext> async_;
  bool cleanup_hook_ = false;
  bool holds_self_ = false;
  bool loop_ref_ = true;
  double received_ = 0, truncated_ = 0, malformed_control_ = 0;
};

}  // namespace

void InitUdpSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("UdpSocket", UdpSocketWrap::Define(env));
  exports.Set("udpSendsRecords", Napi::Boolean::New(env, PlatformSendsRecordsWithDatagrams()));
  exports.Set("udpHasTproxy", Napi::Boolean::New(env, PlatformHasTproxy()));
}

}  // namespace wfp
