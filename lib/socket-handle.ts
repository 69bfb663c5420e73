// The OS socket behind a net.Socket. Public Node API and the addon only: the
// addon finds the TCP handle on this thread's libuv loop whose OS socket has
// the addresses the net.Socket reports.
import { Socket } from 'node:net';
import type { IoctlName } from './constants';
import { invalidArgType, WfpRedirectError } from './errors';
import { binding } from './native';

interface Resolved {
  readonly handle: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

// One lookup per connection. An entry is used only while the socket is not
// destroyed and still reports the same four addresses, and it is dropped on
// 'close', so a closed socket's number (which Windows and POSIX both reuse)
// is never handed out for a later connection.
const resolvedSockets = new WeakMap<Socket, Resolved>();

function stateError(code: 'ERR_WFP_SOCKET_CLOSED' | 'ERR_WFP_SOCKET_NOT_CONNECTED' | 'ERR_WFP_NOT_TCP_SOCKET', ioctl: IoctlName | undefined): WfpRedirectError {
  const reason = {
    ERR_WFP_SOCKET_CLOSED:
      'the socket is destroyed; read or set the redirect data before the socket is closed',
    ERR_WFP_SOCKET_NOT_CONNECTED:
      "the socket is not connected; use it in the server's 'connection' listener or after the client's 'connect' event, and before the peer goes away",
    ERR_WFP_NOT_TCP_SOCKET:
      'the socket is not a TCP socket (it has no local IP address and port); pipes and IPC sockets carry no WFP redirect data',
  }[code];
  const message = ioctl ? `${ioctl}: ${reason}` : reason[0].toUpperCase() + reason.slice(1);
  return new WfpRedirectError(message, ioctl ? { code, ioctl } : { code });
}

/** Validates `socket` and finds its OS socket; `ioctl` names the operation in errors. */
export function resolveSocketHandle(socket: Socket, ioctl?: IoctlName): number {
  if (!(socket instanceof Socket)) throw invalidArgType('socket', 'an instance of net.Socket', socket);
  if (socket.destroyed) throw stateError('ERR_WFP_SOCKET_CLOSED', ioctl);
  if (socket.connecting || socket.pending) throw stateError('ERR_WFP_SOCKET_NOT_CONNECTED', ioctl);
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (localAddress === undefined || localPort === undefined) throw stateError('ERR_WFP_NOT_TCP_SOCKET', ioctl);
  if (remoteAddress === undefined || remotePort === undefined) throw stateError('ERR_WFP_SOCKET_NOT_CONNECTED', ioctl);

  const known = resolvedSockets.get(socket);
  if (
    known !== undefined &&
    known.localPort === localPort &&
    known.remotePort === remotePort &&
    known.localAddress === localAddress &&
    known.remoteAddress === remoteAddress
  ) {
    return known.handle;
  }
  const handle = binding.getSocketHandle(localAddress, localPort, remoteAddress, remotePort);
  if (known === undefined) socket.once('close', () => resolvedSockets.delete(socket));
  resolvedSockets.set(socket, { handle, localAddress, localPort, remoteAddress, remotePort });
  return handle;
}

/**
 * The OS socket of a connected TCP `net.Socket`: the `SOCKET` on Windows (where
 * `socket._handle.fd` is -1), the file descriptor elsewhere. Valid while the
 * socket is open; do not close it yourself.
 */
export function getSocketHandle(socket: Socket): number {
  return resolveSocketHandle(socket);
}
