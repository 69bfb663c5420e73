// The three WFP redirect IOCTLs on net.Sockets and raw OS sockets.
//
// The IOCTLs are in-kernel queries that complete at once, so they run on the
// JS thread; the async forms only wrap them in a promise. Running them on the
// threadpool would let the socket close, and its number be reused by another
// connection, before the worker ran.
import { release } from 'node:os';
import type { Socket } from 'node:net';
import { types } from 'node:util';
import type { IoctlName } from './constants';
import { invalidArgType } from './errors';
import { binding } from './native';
import { resolveSocketHandle } from './socket-handle';

const QUERY_RECORDS: IoctlName = 'SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS';
const QUERY_CONTEXT: IoctlName = 'SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT';

/** Windows 8 / Server 2012 is NT 6.2. */
function windowsAtLeast8(): boolean {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 2);
}

/**
 * Whether this platform has the WFP redirect IOCTLs: Windows 8 / Server 2012 or
 * later. A `true` does not promise a redirect driver; the IOCTLs then fail with
 * `WSAEINVAL` or similar on connections nobody redirected.
 */
export function isSupported(): boolean {
  // Only Windows builds have the IOCTLs; the version check means nothing elsewhere.
  return binding.hasRedirectIoctls && (process.platform !== 'win32' || windowsAtLeast8());
}

/** The opaque redirect records of an accepted, WFP-redirected `net.Socket`, as a fresh Buffer. */
export function queryRedirectRecordsSync(socket: Socket): Buffer {
  return binding.queryRedirectRecords(resolveSocketHandle(socket, QUERY_RECORDS));
}

/**
 * The redirect context of an accepted, WFP-redirected `net.Socket`, as a fresh
 * Buffer: whatever the callout driver stored, usually the original destination
 * as a `SOCKADDR`. Empty when the provider reports success with no data.
 */
export function queryRedirectContextSync(socket: Socket): Buffer {
  return binding.queryRedirectContext(resolveSocketHandle(socket, QUERY_CONTEXT));
}

/**
 * Throws the TypeError or RangeError that `records` deserves, if any. The
 * size rules are the addon's (native/redirect_protocol.h), applied there once
 * for this check and for every set.
 */
export function checkRecords(records: Uint8Array): void {
  if (!types.isUint8Array(records)) throw invalidArgType('records', 'a Uint8Array', records);
  binding.checkRecords(records);
}

/**
 * Gives a raw OS socket (`SOCKET` on Windows) that has not connected yet the
 * records of the connection it proxies, so WFP does not redirect it again.
 * For a `net.Socket`, use `connectRedirected`: a `net.Socket`'s OS socket can
 * only be found once it has connected, when records no longer change its
 * routing. The addon checks the number against the platform's range.
 */
export function setRedirectRecordsSync(osSocket: number, records: Uint8Array): void {
  if (typeof osSocket !== 'number') {
    throw invalidArgType('osSocket', 'a number: a raw OS socket that has not connected yet (for a net.Socket, use connectRedirected)', osSocket);
  }
  checkRecords(records);
  binding.setRedirectRecords(osSocket, records);
}

/** Async form of {@link queryRedirectRecordsSync}; never throws, rejects instead. */
export async function queryRedirectRecords(socket: Socket): Promise<Buffer> {
  return queryRedirectRecordsSync(socket);
}

/** Async form of {@link queryRedirectContextSync}; never throws, rejects instead. */
export async function queryRedirectContext(socket: Socket): Promise<Buffer> {
  return queryRedirectContextSync(socket);
}

/** Async form of {@link setRedirectRecordsSync}; never throws, rejects instead. */
export async function setRedirectRecords(osSocket: number, records: Uint8Array): Promise<void> {
  setRedirectRecordsSync(osSocket, records);
}

/**
 * How this system's Winsock answers the records query on a fresh socket that
 * nobody redirected: the error code (`WSAEINVAL` where the IOCTLs exist;
 * `WSAEOPNOTSUPP` where the provider lacks them, as under Wine), or undefined
 * off Windows 8+. What a proxy checks once at start-up, so that "every
 * connection fails" has one clear reason instead of one per connection.
 */
export function probeRedirectIoctls(): string | undefined {
  if (!isSupported()) return undefined;
  const osSocket = binding.createTcpSocket(4);
  try {
    binding.queryRedirectRecords(osSocket);
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  } finally {
    binding.closeSocket(osSocket);
  }
}
