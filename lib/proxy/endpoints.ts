// Endpoints as the proxy writes and compares them: one spelling for an IPv4
// address whether or not a dual-stack socket mapped it, whether an address and
// port are a listening socket's own; and the coded errors its checks raise.
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { unmapped } from '../sockaddr';

/** An error with a `code`, for the log line of a connection or flow that failed. */
export function coded(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** What a log line says of a failure: its `code`, or failing that its message. */
/**
 * `callback`, made unable to throw: a caller's warn callback is called from socket events and timers, where a throw
 * would end a connection, its log line or the process.
 */
export function withoutThrowing<A extends unknown[]>(callback: (...args: A) => void): (...args: A) => void {
  return (...args) => {
    try {
      callback(...args);
    } catch {
      // As above: nothing of the caller's may end the proxy.
    }
  };
}

export function codeOf(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return typeof code === 'string' ? code : String(message ?? error);
}

/** `ERR_PROXY_LOOP`: the proxy's own traffic came back to it. */
export function loopError(detail: string): Error {
  return coded(`a redirect loop: ${detail}`, 'ERR_PROXY_LOOP');
}

/** host:port, IPv6 in brackets. */
export function formatEndpoint(host: string | undefined, port: number | undefined): string {
  return host?.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** One string per endpoint, however the address was spelt. */
export function endpointKey(address: string | undefined, port: number | undefined): string {
  return `${address === undefined ? address : unmapped(address)} ${port}`;
}

/**
 * Whether `address`:`port` is where `listening` accepts: its own address, or
 * for a wildcard listener any address of this host (`localhost` included).
 */
export function isListeningEndpoint(address: string, port: number, listening: net.AddressInfo): boolean {
  if (port !== listening.port) return false;
  const plain = unmapped(address);
  if (plain === unmapped(listening.address)) return true;
  const wildcard = listening.address === '0.0.0.0' || listening.address === '::';
  return wildcard && (plain === 'localhost' || isInterfaceAddress(plain));
}

/** Whether `address` (unmapped) is one of this host's interfaces' addresses. */
export function isInterfaceAddress(address: string): boolean {
  return Object.values(networkInterfaces()).some((list) => list?.some((entry) => entry.address === address));
}
