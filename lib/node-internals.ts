// The Node internals this package uses, all in this file, each checked before
// use. The outbound path (connectRedirected) needs them: Node has no public
// way to create a TCP socket, act on it, and only then connect it. The native
// relay (lib/proxy/native-relay.ts) needs a socket's descriptor and a way to
// stop Node reading it; accepting natively (lib/proxy/native-accept.ts), a
// listening server's descriptor (the addon accepts from it), or else its
// accepted descriptors before Node makes sockets of them.
// The queries on accepted sockets use none.
import type { Server, Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { WfpRedirectError } from './errors';

/** libuv's TCP handle as Node's tcp_wrap exposes it. */
export interface TcpHandle {
  /** uv_tcp_open: adopt an OS socket. Returns 0 or a negative libuv error. */
  open(osSocket: number): number;
}

interface TcpWrap {
  TCP: new (type: number) => TcpHandle;
  constants: { SOCKET: number };
}

export function internalsError(what: string, cause?: unknown): WfpRedirectError {
  return new WfpRedirectError(
    `connectRedirected relies on the Node internal ${what}, which Node ${process.version} does not provide as ` +
      'expected; the outbound socket cannot be given the redirect records, so nothing was connected. ' +
      'Please report this with your Node version.',
    { code: 'ERR_WFP_NODE_INTERNALS', cause },
  );
}

let tcpWrap: TcpWrap | WfpRedirectError | undefined;

function loadTcpWrap(): TcpWrap | WfpRedirectError {
  const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
  if (typeof binding !== 'function') return internalsError('process.binding');
  let wrap: Partial<TcpWrap> | undefined;
  try {
    wrap = binding.call(process, 'tcp_wrap') as Partial<TcpWrap>;
  } catch (error) {
    // As Node answers for a module it no longer lets process.binding reach.
    return internalsError("process.binding('tcp_wrap')", error);
  }
  if (typeof wrap?.TCP !== 'function') return internalsError("process.binding('tcp_wrap').TCP");
  if (typeof wrap.constants?.SOCKET !== 'number') return internalsError("process.binding('tcp_wrap').constants.SOCKET");
  if (typeof wrap.TCP.prototype.open !== 'function') return internalsError('TCP.prototype.open (uv_tcp_open)');
  return wrap as TcpWrap;
}

/** A new, socket-less libuv TCP handle (`new TCP(TCPConstants.SOCKET)`). */
export function newTcpHandle(): TcpHandle {
  tcpWrap ??= loadTcpWrap();
  if (tcpWrap instanceof WfpRedirectError) throw tcpWrap;
  return new tcpWrap.TCP(tcpWrap.constants.SOCKET);
}

/** Whether the net.Socket is built on that handle (`socket._handle`). */
export function usesHandle(socket: Socket, handle: TcpHandle): boolean {
  return (socket as unknown as { _handle?: unknown })._handle === handle;
}

/** What the native relay needs of a net.Socket's handle (Node's LibuvStreamWrap). */
interface StreamHandle {
  fd?: unknown;
  reading?: unknown;
  readStop?: unknown;
}

/**
 * Why a socket's handle cannot be taken over (undefined: it can): it must have
 * a descriptor (`_handle.fd`, POSIX) and `_handle.readStop` (uv_read_stop).
 */
export function handleTakeOverMissing(socket: Socket): string | undefined {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (handle === null || typeof handle !== 'object') return 'net.Socket._handle';
  // Windows: fd is -1 by design; the relay finds the SOCKET by its addresses (lib/socket-handle.ts).
  if (process.platform !== 'win32' && (typeof handle.fd !== 'number' || handle.fd < 0)) return 'net.Socket._handle.fd';
  if (typeof handle.readStop !== 'function') return 'net.Socket._handle.readStop (uv_read_stop)';
  return undefined;
}

/**
 * Stops Node reading the socket (uv_read_stop) for good and answers its
 * descriptor (-1 on Windows), or a reason it could not. `reading` stays true: Node's `_read`
 * starts the handle again whenever that flag is false, and its stream may
 * still call `_read` later (a read it had asked for), which would take bytes
 * the native relay must have. Check handleTakeOverMissing first.
 */
export function stopReading(socket: Socket): number | string {
  const handle = (socket as unknown as { _handle: StreamHandle & { readStop(): number } })._handle;
  const result = handle.readStop();
  if (result !== 0) return `uv_read_stop answered ${String(result)}`;
  handle.reading = true;
  return handle.fd as number;
}

/** Undoes stopReading: Node reads the socket again (`reading` is true already, so its own _read does not start it twice). */
export function resumeReading(socket: Socket): void {
  const handle = (socket as unknown as { _handle: StreamHandle & { readStart(): number } })._handle;
  handle.reading = true;
  const result = handle.readStart();
  if (result !== 0) socket.destroy(Object.assign(new Error(`uv_read_start answered ${String(result)}`), { code: 'ERR_SOCKET_READ' }));
}

/** What taking over a server's accepts needs of Node: its listening TCPWrap's `onconnection`, and each accepted handle's `fd` and `close`. */
interface ListeningHandle {
  onconnection?: unknown;
}
interface AcceptedHandle {
  fd?: unknown;
  close?: unknown;
}

/**
 * The descriptor of a listening server's socket (`server._handle.fd`, POSIX),
 * for the native relay to accept from itself; otherwise the name of the
 * internal that was not there.
 */
export function listeningDescriptor(server: Server): number | string {
  const handle = (server as unknown as { _handle?: { fd?: unknown } | null })._handle;
  if (handle === null || typeof handle !== 'object') return 'net.Server._handle';
  return typeof handle.fd === 'number' && handle.fd >= 0 ? handle.fd : 'net.Server._handle.fd';
}

/** Why a listening server's accepts cannot be taken over (undefined: they can): its `_handle` must have an `onconnection` function. */
export function acceptTakeOverMissing(server: Server): string | undefined {
  const handle = (server as unknown as { _handle?: ListeningHandle | null })._handle;
  if (handle === null || typeof handle !== 'object') return 'net.Server._handle';
  if (typeof handle.onconnection !== 'function') return 'net.Server._handle.onconnection';
  return undefined;
}

/**
 * From now on each connection the listening `server` accepts goes to
 * `accepted` as its descriptor, and Node's handle of it is closed right after
 * (the callback must have duplicated what it keeps): no net.Socket is made.
 * An accept that fails is the server's 'error', as Node's own onconnection
 * reports it. A handle without a descriptor is closed and `missing` says
 * which internal was not there. Check acceptTakeOverMissing first.
 */
export function takeOverAccepts(server: Server, accepted: (fd: number) => void, missing: (what: string) => void): void {
  const handle = (server as unknown as { _handle: ListeningHandle })._handle;
  handle.onconnection = (status: number, client: AcceptedHandle | undefined) => {
    if (status < 0) {
      const code = getSystemErrorName(status);
      server.emit('error', Object.assign(new Error(`accept ${code}`), { code, errno: status, syscall: 'accept' }));
      return;
    }
    if (client === undefined) return;
    try {
      if (typeof client.fd === 'number' && client.fd >= 0) accepted(client.fd);
      else missing('the accepted handle\'s fd');
    } finally {
      if (typeof client.close === 'function') client.close();
    }
  };
}
