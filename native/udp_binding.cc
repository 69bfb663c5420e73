// binding.UdpSocket: a UDP socket on this thread's event loop. A uv_poll on
// the OS socket says when datagrams wait; each is read with its control
// messages (native/udp_socket.h) and handed to JS with the redirect data that
// came with it. No thread, nothing blocks: the socket is non-blocking.
//
//   new UdpSocket(family, transparent, onMessage, onError, onSent)
//   bind(address, port)     and start receiving
//   address()               { address, port, family }
//   send(data, address, port, records?, fromAddress?, fromPort?, ticket)
//                           true: gone; false: queued until the socket polls
//                           writable, and onSent(ticket, error?) says how it went
//   close()                 idempotent; the OS socket closes once libuv lets go
//                           of it; queued datagrams are dropped, their onSent
//                           never called (lib/udp-socket.ts answers them)
//   setMark(mark)           SO_MARK (Linux)
//   ref() / unref()         whether it keeps the event loop alive
//   stats()                 { received, truncated, malformedControl, sendsQueued, sendQueueFull }
//
// onMessage(data, address, port, records?, context?, destinationAddress?, destinationPort?)
// onError(error, closed)   closed: the socket gave up after repeated poll failures
//
// checkDatagramRecords(records) throws what send() would for these records.
#include "udp_binding.h"

#include <uv.h>

#include <array>
#include <deque>
#include <memory>
#include <string>
#include <vector>

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

// A send that finds the socket's buffer full waits in a queue and goes, in
// order, when the socket polls writable (as dgram's do). The queue is bounded
// so that a peer or OS that does not keep up cannot grow memory without end;
// beyond it a send fails with ERR_UDP_SEND_QUEUE_FULL.
constexpr size_t kSendQueueMaxDatagrams = 1024;
constexpr size_t kSendQueueMaxBytes = 1024 * 1024;

// libuv stops a poll that fails (POLLERR); it is restarted after each failure
// unless this many came within the window: then the socket is closed, said
// once, rather than failing over and over.
constexpr int kPollFailuresBeforeClose = 10;
constexpr uint64_t kPollFailureWindowMs = 1000;

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

// A datagram waiting for the socket to poll writable, with everything that
// goes with it.
struct QueuedDatagram {
  std::vector<uint8_t> data;
  Endpoint to;
  std::vector<uint8_t> records;
  bool has_from;
  Endpoint from;
  double ticket;  // what onSent answers
};

// The records a datagram carries as an IP_WFP_REDIRECT_RECORDS control
// message: the checks (and codes) of the IOCTL's records, worded for a datagram.
bool ReadDatagramRecords(Napi::Env env, Napi::Value value, Napi::Uint8Array* out) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowArgumentError(env, true, "The records must be a Uint8Array");
    return false;
  }
  *out = value.As<Napi::Uint8Array>();
  const Status checked = CheckBlobToSet(out->ByteLength());
  if (checked == Status::kEmptyInput) {
    Napi::RangeError error = Napi::RangeError::New(
        env, "IP_WFP_REDIRECT_RECORDS: the records for this datagram are empty; pass the bytes that came with "
             "the flow's first datagram (rinfo.redirectRecords), or send without redirectRecords");
    error.Set("code", "ERR_WFP_RECORDS_EMPTY");
    error.ThrowAsJavaScriptException();
    return false;
  }
  if (checked != Status::kOk) {
    ThrowWfpError(env, "ERR_WFP_BLOB_TOO_LARGE",
                  "IP_WFP_REDIRECT_RECORDS: the records for this datagram are larger than the " +
                      std::to_string(kMaxBlobSize) +
                      " bytes this package sends as a control message; pass the bytes that came with the flow's "
                      "first datagram (rinfo.redirectRecords)",
                  Napi::Object::New(env));
    return false;
  }
  return true;
}

// checkDatagramRecords(records): what send() would throw for these records.
Napi::Value CheckDatagramRecords(const Napi::CallbackInfo& info) {
  Napi::Uint8Array records;
  ReadDatagramRecords(info.Env(), info[0], &records);
  return info.Env().Undefined();
}

// Throws the failure of one send. A TPROXY reply (`from`) whose bind finds
// the address taken says why: a local socket holds it.
void ThrowSendError(Napi::Env env, int error, const char* syscall, const Endpoint* from) {
  if (from != nullptr && std::string(syscall) == "bind" && uv_translate_sys_error(error) == UV_EADDRINUSE) {
    const std::string address = IsMappedIpv4(*from) ? FormatAddress(*from) : "[" + FormatAddress(*from) + "]";
    const std::string why = "a local socket already holds " + address + ":" + std::to_string(from->port) +
                            ", so the reply cannot be sent from it; do not TPROXY traffic for a destination on "
                            "this host (exempt local destinations from the TPROXY rule, e.g. -m addrtype ! "
                            "--dst-type LOCAL)";
    ThrowSystemError(env, error, syscall, "bind (a reply from the original destination)", why.c_str());
    return;
  }
  ThrowSystemError(env, error, syscall, syscall, nullptr);
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
    if ((family != 4 && family != 6) || !info[1].IsBoolean() || !info[2].IsFunction() || !info[3].IsFunction() ||
        !info[4].IsFunction()) {
      ThrowArgumentError(env, true, "Expected (family: 4 | 6, transparent: boolean, onMessage, onError, onSent)");
      return;
    }
    const char* syscall = "socket";
    const int error = OpenUdpSocket(static_cast<int>(family), info[1].As<Napi::Boolean>(), &socket_, &syscall);
    if (error != 0) {
      ThrowSystemError(env, error, syscall, syscall,
                       info[1].As<Napi::Boolean>() ? PrivilegeHint(error, "a transparent socket needs CAP_NET_ADMIN (run as root, or setcap cap_net_admin+ep on the node binary)", "could not create the transparent UDP socket")
                                                   : "could not create the UDP socket");
      return;
    }
    on_message_ = Napi::Persistent(info[2].As<Napi::Function>());
    on_error_ = Napi::Persistent(info[3].As<Napi::Function>());
    on_sent_ = Napi::Persistent(info[4].As<Napi::Function>());
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
    // Dropped: JS may not run here (a destructor, the env's clean-up), and
    // lib/udp-socket.ts answers the datagrams' callbacks itself on close().
    send_queue_.clear();
    queued_bytes_ = 0;
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
    StartPoll();
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
    if (has_records && !ReadDatagramRecords(env, info[3], &records)) return env.Undefined();
    const bool has_from = !info[4].IsUndefined();
    if (has_from && !ReadEndpoint(env, info[4], info[5], 1, &from)) return env.Undefined();
    if (!info[6].IsNumber()) {
      ThrowArgumentError(env, true, "Expected a ticket number for the send's outcome");
      return env.Undefined();
    }
    const uint8_t* record_bytes = has_records ? records.Data() : nullptr;
    const size_t record_size = has_records ? records.ByteLength() : 0;
    // Behind queued datagrams a new one waits its turn: order is kept.
    if (send_queue_.empty()) {
      const char* syscall = "sendmsg";
      const int error = SendDatagram(socket_, data.Data(), data.ByteLength(), to, record_bytes, record_size,
                                     has_from ? &from : nullptr, &syscall);
      if (error == 0) return Napi::Boolean::New(env, true);
      if (!SendWouldBlock(error) || poll_ == nullptr) {
        ThrowSendError(env, error, syscall, has_from ? &from : nullptr);
        return env.Undefined();
      }
    }
    const size_t size = data.ByteLength() + record_size;
    if (send_queue_.size() >= kSendQueueMaxDatagrams || size > kSendQueueMaxBytes - queued_bytes_) {
      ++send_queue_full_;
      ThrowWfpError(env, "ERR_WFP_UDP_SEND_QUEUE_FULL",
                    "The datagram was not sent: the UDP socket's send queue is full (" +
                        std::to_string(send_queue_.size()) + " datagrams, " + std::to_string(queued_bytes_) +
                        " bytes waiting; the limits are " + std::to_string(kSendQueueMaxDatagrams) + " and " +
                        std::to_string(kSendQueueMaxBytes) +
                        "): the network or the OS is not keeping up; send less, or wait for earlier sends' callbacks",
                    Napi::Object::New(env));
      return env.Undefined();
    }
    send_queue_.push_back(QueuedDatagram{std::vector<uint8_t>(data.Data(), data.Data() + data.ByteLength()), to,
                                         std::vector<uint8_t>(record_bytes, record_bytes + record_size), has_from,
                                         from, info[6].As<Napi::Number>().DoubleValue()});
    queued_bytes_ += size;
    ++sends_queued_;
    const int polling = StartPoll();
    if (polling != 0) {
      queued_bytes_ -= size;
      send_queue_.pop_back();
      ThrowWfpError(env, "ERR_WFP_UDP_POLL",
                    std::string("libuv cannot poll the UDP socket for writing: ") + uv_strerror(polling),
                    Napi::Object::New(env));
      return env.Undefined();
    }
    return Napi::Boolean::New(env, false);
  }

  // Readable always; writable only while datagrams wait (a UDP socket is
  // nearly always writable: polling for it otherwise would spin).
  int StartPoll() {
    if (poll_ == nullptr) return 0;
    const int events = UV_READABLE | (send_queue_.empty() ? 0 : UV_WRITABLE);
    if (events == poll_events_) return 0;
    poll_events_ = events;
    return uv_poll_start(&poll_->handle, events, OnPoll);
  }

  Napi::Value SetMark(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t mark = 0;
    if (!EnsureOpen(env) || !ReadMark(info, 0, &mark)) return env.Undefined();
    const int error = SetSocketMark(socket_.socket, mark);
    if (error != 0) {
      ThrowSystemError(env, error, "setsockopt", "setsockopt(SO_MARK)", PrivilegeHint(error, "marking sockets needs CAP_NET_ADMIN (run as root, or setcap cap_net_admin+ep on the node binary)", "the socket could not be marked"));
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
    result.Set("sendsQueued", sends_queued_);
    result.Set("sendQueueFull", send_queue_full_);
    return result;
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    UdpSocketWrap* self = reinterpret_cast<PollHandle*>(handle)->owner;
    if (self == nullptr) return;
    Napi::HandleScope scope(self->Env());
    if (status < 0) {
      self->OnPollFailure(status);
      return;
    }
    if ((events & UV_WRITABLE) != 0) self->FlushSendQueue();
    if ((events & UV_READABLE) != 0) self->Drain();
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

  // Sends what waits, in order, until the socket would block again; each
  // datagram's onSent is called once, when it went or failed.
  void FlushSendQueue() {
    Napi::Env env = Env();
    for (int i = 0; i < kDatagramsPerWakeUp && socket_.open && !send_queue_.empty(); ++i) {
      Napi::HandleScope each(env);
      const QueuedDatagram& next = send_queue_.front();
      const Endpoint* from = next.has_from ? &next.from : nullptr;
      const char* syscall = "sendmsg";
      const int error = SendDatagram(socket_, next.data.data(), next.data.size(), next.to,
                                     next.records.empty() ? nullptr : next.records.data(), next.records.size(), from,
                                     &syscall);
      if (error != 0 && SendWouldBlock(error)) return;  // still full: the poll says when
      napi_value outcome = env.Undefined();
      if (error != 0) {
        ThrowSendError(env, error, syscall, from);
        outcome = env.GetAndClearPendingException().Value();
      }
      const double ticket = next.ticket;
      queued_bytes_ -= next.data.size() + next.records.size();
      send_queue_.pop_front();
      Call(on_sent_, {Napi::Number::New(env, ticket), outcome});
    }
    if (socket_.open) StartPoll();  // readable alone once the queue is empty
  }

  // libuv has stopped the poll (POLLERR: an ICMP error queued under
  // IP_RECVERR, say). The socket's pending error is read and cleared, said,
  // and the poll restarted; failing kPollFailuresBeforeClose times within
  // kPollFailureWindowMs closes the socket instead, said once.
  void OnPollFailure(int status) {
    Napi::Env env = Env();
    const int pending = TakePendingError(socket_);
    const uint64_t now = uv_now(poll_->handle.loop);
    poll_failure_times_[poll_failures_ % kPollFailuresBeforeClose] = now;
    ++poll_failures_;
    const bool too_many = poll_failures_ >= kPollFailuresBeforeClose &&
                          now - poll_failure_times_[poll_failures_ % kPollFailuresBeforeClose] <= kPollFailureWindowMs;
    const std::string pending_name = pending != 0 ? uv_err_name(uv_translate_sys_error(pending)) : "";
    const std::string what = std::string(uv_err_name(status)) +
                             (pending != 0 ? ", the socket's pending error " + pending_name : std::string());
    int restarted = 0;
    if (!too_many) {
      poll_events_ = 0;  // libuv stopped it: start it whatever the events
      restarted = StartPoll();
    }
    Napi::Object fields = Napi::Object::New(env);
    if (pending != 0) fields.Set("errno", pending);
    if (too_many || restarted != 0) {
      Shutdown();
      ThrowWfpError(env, "ERR_WFP_UDP_POLL_CLOSED",
                    "polling the UDP socket failed " +
                        (too_many ? std::to_string(kPollFailuresBeforeClose) + " times within " +
                                        std::to_string(kPollFailureWindowMs) + " ms"
                                  : std::string("and could not be restarted (") + uv_err_name(restarted) + ")") +
                        " (last: " + what + "), so the socket was closed; create a new one",
                    fields);
      Call(on_error_, {env.GetAndClearPendingException().Value(), Napi::Boolean::New(env, true)});
      return;
    }
    ThrowWfpError(env, pending != 0 ? pending_name : uv_err_name(status),
                  "polling the UDP socket failed (" + what +
                      "); the error was read and cleared and receiving goes on (an ICMP error for an earlier "
                      "datagram is the usual cause)",
                  fields);
    Call(on_error_, {env.GetAndClearPendingException().Value(), Napi::Boolean::New(env, false)});
  }

  void Drain() {
    Napi::Env env = Env();
    for (int i = 0; i < kDatagramsPerWakeUp && socket_.open; ++i) {
      Napi::HandleScope each(env);
      ReceivedDatagram datagram;
      if (receive_buffers.data.empty()) PrepareReceiveBuffers(&receive_buffers);
      const int error = ReceiveDatagram(socket_, receive_buffers, &datagram);
      if (error == kWouldBlock) return;
      if (error != 0) {
        ThrowSystemError(env, error, "recvmsg", "receiving a datagram", nullptr);
        Call(on_error_, {env.GetAndClearPendingException().Value(), Napi::Boolean::New(env, false)});
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
  Napi::FunctionReference on_sent_;
  std::deque<QueuedDatagram> send_queue_;
  size_t queued_bytes_ = 0;
  int poll_events_ = 0;
  std::array<uint64_t, kPollFailuresBeforeClose> poll_failure_times_{};
  uint64_t poll_failures_ = 0;
  std::unique_ptr<Napi::AsyncContext> async_;
  bool cleanup_hook_ = false;
  bool holds_self_ = false;
  bool loop_ref_ = true;
  double received_ = 0, truncated_ = 0, malformed_control_ = 0, sends_queued_ = 0, send_queue_full_ = 0;
};

}  // namespace

void InitUdpSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("UdpSocket", UdpSocketWrap::Define(env));
  exports.Set("checkDatagramRecords", Napi::Function::New(env, CheckDatagramRecords));
  exports.Set("udpSendsRecords", Napi::Boolean::New(env, PlatformSendsRecordsWithDatagrams()));
  exports.Set("udpHasTproxy", Napi::Boolean::New(env, PlatformHasTproxy()));
}

}  // namespace wfp
