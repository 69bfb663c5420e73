// A connection to an upstream proxy, opened with connectRedirected (so the
// redirect records and SO_MARK are on the OS socket before it connects), and a
// handshake run on it under one deadline: connect, any lookup and handshake
// together take at most `handshakeTimeout`, or end at once on abort.
import net from 'node:net';
import { connectRedirected } from '../connect';
import { invalidArgType, outOfRange, WfpRedirectError } from '../errors';
import { connectedToItself, selfConnectError } from '../self-connect';
import { UpstreamError, abortError } from './errors';
import { Exchange, type Steps } from './exchange';
import type { ParseUpstreamOptions, Upstream } from './url';

export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

export interface UpstreamSocketOptions extends ParseUpstreamOptions {
  /** The redirect records of the connection being proxied, set on the socket to the upstream before it connects (Windows). */
  redirectRecords?: Uint8Array | undefined;
  /** SO_MARK on the socket to the upstream before it connects (Linux). */
  mark?: number | undefined;
  /** Milliseconds for lookup, connect and handshake together. Default 10000. */
  handshakeTimeout?: number | undefined;
  /** Aborts the handshake; nothing is left open. Once the promise has resolved, it no longer matters. */
  signal?: AbortSignal | undefined;
  /** Resolves the upstream's host name and, for socks5://, the destination's. Default `dns.lookup`. */
  lookup?: net.LookupFunction | undefined;
  /** The upstream's address family, when its host is a name. */
  family?: 0 | 4 | 6 | undefined;
  localAddress?: string | undefined;
  noDelay?: boolean | undefined;
  keepAlive?: boolean | undefined;
  keepAliveInitialDelay?: number | undefined;
  allowHalfOpen?: boolean | undefined;
}

/** The one bound on a handshake: a timer and the caller's signal; whichever fires first ends it. */
export class Deadline {
  #failure: Error | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => this.#fire(abortError(this.#signal!));
  readonly #listeners = new Set<(error: Error) => void>();

  constructor(upstream: Upstream, options: UpstreamSocketOptions) {
    const ms = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
    if (typeof ms !== 'number') throw invalidArgType('options.handshakeTimeout', 'of type number', ms);
    if (!Number.isInteger(ms) || ms < 1 || ms > 0x7fffffff) throw outOfRange('ERR_OUT_OF_RANGE', `options.handshakeTimeout must be an integer from 1 to 2147483647 (ms). Received ${ms}`);
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an AbortSignal', signal);
    this.#signal = signal;
    this.#timer = setTimeout(
      () => this.#fire(new UpstreamError(`The upstream proxy ${upstream.display} did not complete connect and handshake within ${ms} ms (handshakeTimeout)`, { code: 'ERR_UPSTREAM_TIMEOUT' })),
      ms,
    );
    if (signal?.aborted) this.#onAbort();
    else signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  get failure(): Error | undefined {
    return this.#failure;
  }

  #fire(error: Error): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    for (const listener of this.#listeners) listener(error);
  }

  /** Calls `listener` when the deadline passes (at once if it has); returns the way to stop listening. */
  onFire(listener: (error: Error) => void): () => void {
    if (this.#failure !== undefined) listener(this.#failure);
    else this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** `promise`, or the deadline's error if it fires first. */
  race<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const stop = this.onFire(reject);
      promise.then(resolve, reject).finally(stop);
    });
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#listeners.clear();
  }
}

/** The OS's failure to reach the upstream; this package's own (records, mark, Node internals) as it is, since it is about this side. */
function connectFailed(upstream: Upstream, cause: Error): Error {
  if (cause instanceof WfpRedirectError) return cause;
  const code = (cause as NodeJS.ErrnoException).code ?? cause.name;
  return new UpstreamError(`Could not connect to the upstream proxy ${upstream.display} (${code}): check that it runs and is reachable`, { code: 'ERR_UPSTREAM_CONNECT', cause });
}

function closedEarly(upstream: Upstream, received: number, cause?: Error): UpstreamError {
  const how = cause === undefined ? 'closed the connection' : `reset the connection (${(cause as NodeJS.ErrnoException).code ?? cause.name})`;
  return new UpstreamError(`The upstream proxy ${upstream.display} ${how} before its answer was complete (${received} bytes of it received)`, { code: 'ERR_UPSTREAM_CLOSED', cause });
}

/**
 * Connects to `upstream` and runs the handshake `makeSteps` gives once
 * connected. Resolves with the socket, the handshake's result, and any bytes
 * after the handshake put back into the socket (unshift), in the event that
 * brought them. On failure the socket is destroyed and the error is typed.
 */
export function openTunnel<T>(
  upstream: Upstream,
  options: UpstreamSocketOptions,
  deadline: Deadline,
  makeSteps: (write: (bytes: Buffer) => void, socket: net.Socket) => Steps<T>,
): Promise<{ socket: net.Socket; value: T }> {
  return new Promise((resolve, reject) => {
    if (deadline.failure !== undefined) return reject(deadline.failure);
    const target = {
      host: upstream.host,
      port: upstream.port,
      family: options.family,
      lookup: options.lookup,
      localAddress: options.localAddress,
      noDelay: options.noDelay,
      keepAlive: options.keepAlive,
      keepAliveInitialDelay: options.keepAliveInitialDelay,
      allowHalfOpen: options.allowHalfOpen,
    };
    // Nothing to set before connect (no records, no mark): Node's own socket, which
    // spares connectRedirected's handle and its lookup of the OS socket per connection.
    const socket =
      options.redirectRecords === undefined && options.mark === undefined
        ? net.connect(target)
        : connectRedirected({ ...target, redirectRecords: options.redirectRecords, mark: options.mark });
    let exchange: Exchange<T> | undefined;
    let settled = false;

    const finish = (error: Error | undefined, value?: T): void => {
      if (settled) return;
      settled = true;
      stopDeadline();
      socket.removeListener('connect', onConnect);
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onEnd);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      if (error === undefined) return resolve({ socket, value: value as T });
      // A late error of the destroyed socket must not reach the process unhandled.
      socket.on('error', () => {});
      socket.destroy();
      reject(error);
    };
    const received = (): number => exchange?.pending ?? 0;
    const onError = (error: Error): void => finish(deadline.failure ?? (exchange === undefined ? connectFailed(upstream, error) : closedEarly(upstream, received(), error)));
    const onClose = (): void => finish(deadline.failure ?? closedEarly(upstream, received()));
    const onEnd = (): void => finish(closedEarly(upstream, received()));
    const onConnect = (): void => {
      if (connectedToItself(socket, upstream.port)) return finish(connectFailed(upstream, selfConnectError(socket.remoteAddress!, socket.remotePort!)));
      try {
        exchange = new Exchange(makeSteps((bytes) => socket.write(bytes), socket));
      } catch (error) {
        return finish(error as Error);
      }
      socket.on('readable', onReadable);
    };
    const onReadable = (): void => {
      try {
        let chunk: Buffer | null;
        while (!settled && (chunk = socket.read() as Buffer | null) !== null) {
          if (exchange!.feed(chunk)) {
            const { value, rest } = exchange!.result!;
            // Put back in this same event: the stream cannot have emitted 'end' yet.
            if (rest.length > 0) socket.unshift(rest);
            return finish(undefined, value);
          }
        }
      } catch (error) {
        finish(error as Error);
      }
    };
    const stopDeadline = deadline.onFire((error) => finish(error));
    socket.on('connect', onConnect);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}
