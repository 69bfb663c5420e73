// connectRedirected: an outbound TCP connection whose OS socket is given the
// WFP redirect records before it connects.
//
// net.connect creates its socket and connects it in one step, so this builds
// the net.Socket on a libuv TCP handle that has no OS socket yet
// (node-internals.ts), and when the destination's address family is known
// (at once for an IP literal, after the DNS lookup otherwise) creates the OS
// socket in the addon, sets the records on it, hands it to the handle
// (uv_tcp_open), and only then lets Node connect it.
import dns from 'node:dns';
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { invalidArgType, outOfRange, WfpRedirectError, type WfpRedirectErrorCode } from './errors';
import { binding } from './native';
import { internalsError, newTcpHandle, usesHandle, type TcpHandle } from './node-internals';
import { checkPort } from './ports';
import { checkRecords } from './redirect';

export interface ConnectRedirectedOptions {
  port: number;
  /** Default `'localhost'`. A host name is resolved first; its address family decides the socket's. */
  host?: string | undefined;
  family?: 0 | 4 | 6 | undefined;
  hints?: number | undefined;
  lookup?: net.LookupFunction | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
  /** As `socket.setTimeout(timeout)`: a `'timeout'` event after that many ms of inactivity. */
  timeout?: number | undefined;
  keepAlive?: boolean | undefined;
  keepAliveInitialDelay?: number | undefined;
  noDelay?: boolean | undefined;
  allowHalfOpen?: boolean | undefined;
  signal?: AbortSignal | undefined;
  /** The records from `queryRedirectRecords` of the connection being proxied. Windows only. */
  redirectRecords?: Uint8Array | undefined;
  /**
   * Linux: `SO_MARK` on the socket before it connects (0 to 2^32 - 1), for
   * firewall rules that exempt the proxy's own connections (`-m mark ! --mark N`).
   * Needs CAP_NET_ADMIN. Elsewhere it throws `ERR_WFP_UNSUPPORTED_PLATFORM`.
   */
  mark?: number | undefined;
}

/**
 * Marks a throwaway socket with `mark`: what a program that will mark every
 * outbound socket checks once at start-up, so that a missing CAP_NET_ADMIN is
 * one clear error, not one per connection.
 */
export function probeMark(mark: number): void {
  checkMark(mark);
  const osSocket = binding.createTcpSocket(4);
  try {
    binding.setSocketMark(osSocket, mark);
  } finally {
    binding.closeSocket(osSocket);
  }
}

/** Checks a socket mark; throws where the platform has none. */
export function checkMark(mark: unknown, name = 'options.mark'): number {
  if (typeof mark !== 'number') throw invalidArgType(name, 'of type number', mark);
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) throw outOfRange('ERR_OUT_OF_RANGE', `${name} must be an integer from 0 to 4294967295. Received ${mark}`);
  if (!binding.hasSocketMark) {
    throw new WfpRedirectError(`${name}: SO_MARK is Linux's; ${process.platform} has none (on Windows the redirect records keep a proxy's own connections from being redirected)`, {
      code: 'ERR_WFP_UNSUPPORTED_PLATFORM',
    });
  }
  return mark;
}

/**
 * Creates the OS socket for `family`, gives it the records, and has `handle`
 * adopt it. Returns the failure, if any; nothing is left open after one.
 */
function adoptNewSocket(handle: TcpHandle, family: number, records: Uint8Array | undefined, mark: number | undefined): Error | undefined {
  let osSocket: number;
  try {
    osSocket = binding.createTcpSocket(family === 6 ? 6 : 4);
  } catch (error) {
    return error as Error;
  }
  try {
    if (records) binding.setRedirectRecords(osSocket, records);
    if (mark !== undefined) binding.setSocketMark(osSocket, mark);
    const status = handle.open(osSocket);
    if (status !== 0) {
      const name = getSystemErrorName(status);
      // libuv's codes are negative errnos on POSIX; on Windows they are its
      // own numbers, not the OS's, so there is no OS number to give.
      const fields = { code: name as WfpRedirectErrorCode, syscall: 'uv_tcp_open' };
      throw new WfpRedirectError(
        `uv_tcp_open failed with ${name}: the outbound socket could not be adopted`,
        process.platform === 'win32' ? fields : { ...fields, errno: -status },
      );
    }
  } catch (error) {
    binding.closeSocket(osSocket);
    return error as Error;
  }
  return undefined;
}

function destroyedDuringLookup(): WfpRedirectError {
  return new WfpRedirectError('The socket was destroyed during its host-name lookup, so nothing was connected', { code: 'ERR_WFP_SOCKET_CLOSED' });
}

/**
 * Like `net.connect(options)` for TCP, with `redirectRecords` set on the OS
 * socket before it connects, so WFP does not redirect the proxy's own
 * connection again. Failures, the records' included, arrive as an `'error'`
 * event; argument mistakes throw, as with `net.connect`.
 */
export function connectRedirected(options: ConnectRedirectedOptions, connectListener?: () => void): net.Socket {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
  const port = checkPort(options.port, 'options.port');
  const records = options.redirectRecords;
  if (records !== undefined) checkRecords(records);
  const mark = options.mark === undefined ? undefined : checkMark(options.mark);
  if (connectListener !== undefined && typeof connectListener !== 'function') {
    throw invalidArgType('connectListener', 'a function', connectListener);
  }

  const handle = newTcpHandle();
  const socket = new net.Socket({
    handle,
    // Without it the socket would start reading the unconnected handle, fail,
    // and connect() would quietly build a new handle without the records.
    manualStart: true,
    allowHalfOpen: options.allowHalfOpen,
    noDelay: options.noDelay,
    keepAlive: options.keepAlive,
    keepAliveInitialDelay: options.keepAliveInitialDelay,
    signal: options.signal,
  } as net.SocketConstructorOpts);
  if (!usesHandle(socket, handle)) {
    // Destroyed already: it started reading the unconnected handle, so
    // `manualStart` was not honoured; its read error is in `cause`, and must
    // not reach the process as an unhandled 'error'.
    const what = socket.destroyed ? 'net.Socket option `manualStart`' : 'net.Socket option `handle`';
    const cause = socket.errored ?? undefined;
    socket.on('error', () => {});
    socket.destroy();
    throw internalsError(what, cause);
  }
  // The records are on `handle`'s OS socket: a connection on any other is refused.
  socket.prependOnceListener('connect', () => {
    if (!usesHandle(socket, handle)) socket.destroy(internalsError('net.Socket#connect reusing its handle'));
  });
  if (options.timeout) socket.setTimeout(options.timeout);
  if (connectListener) socket.once('connect', connectListener);

  const host = options.host ?? 'localhost';
  const target = {
    port,
    host,
    family: options.family,
    hints: options.hints,
    localAddress: options.localAddress,
    localPort: options.localPort,
    // Happy Eyeballs would try each address on a new handle of its own.
    autoSelectFamily: false,
  };
  try {
    const literalFamily = net.isIP(host);
    if (literalFamily !== 0) {
      const failure = adoptNewSocket(handle, literalFamily, records, mark);
      if (failure) {
        process.nextTick(() => socket.destroy(failure));
        return socket;
      }
      socket.connect(target);
    } else {
      const lookup = options.lookup ?? dns.lookup;
      socket.connect({
        ...target,
        lookup: (hostname, dnsOptions, callback) => {
          lookup(hostname, dnsOptions, (error, address, family) => {
            if (error) return callback(error, address, family);
            // Destroyed while the lookup ran: the handle is closed or closing.
            // Given an OS socket now, it would never close it (Linux), or libuv
            // would abort the process (Windows). net ignores this answer then;
            // the error is for a Node that would not.
            if (!usesHandle(socket, handle)) return callback(destroyedDuringLookup(), address, family);
            if (typeof address !== 'string') {
              return callback(new TypeError('the lookup function returned several addresses; connectRedirected asks for one'), '', 4);
            }
            callback(adoptNewSocket(handle, family ?? net.isIP(address), records, mark) ?? null, address, family);
          });
        },
      });
    }
  } catch (error) {
    socket.destroy();
    throw error;
  }
  return socket;
}
