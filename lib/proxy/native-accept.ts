// Accepting, connecting and relaying with no JavaScript per connection. Where
// nothing about a connection is decided in JavaScript (no route hook, rules,
// sniffing, process lookup, upstream proxy or start log) and where it goes is
// a fixed IP address or its netfilter original destination, TransparentProxy
// with `relay: 'native'` hands each descriptor its server accepts straight to
// the addon (binding.relayConnect), which decides it as the JS path would
// (ERR_NOT_REDIRECTED, ERR_PROXY_LOOP), connects the outbound socket and
// relays; JavaScript hears of the connection once, at its end, for the log
// line. No net.Socket is made for either side: those two sockets, their
// listeners and promises were most of what a connection cost (issue 28).
// Linux only, as the native relay is.
import type { Server } from 'node:net';
import { binding, type NativeConnectionDone } from '../native';
import { acceptTakeOverMissing, takeOverAccepts } from '../node-internals';

export interface NativeAcceptOptions {
  /** Where the server listens (an IP address): a destination there is the proxy itself. */
  listening: { address: string; port: number };
  /** Where every connection goes (an IP address literal and a port), or 'original' for each one's netfilter original destination. */
  target: { host: string; port: number } | 'original';
  mark: number | undefined;
  connectTimeout: number;
  idleTimeout: number;
  halfCloseTimeout: number;
  /** The new connection's id (for its log line), or undefined when no more may be relayed now: it is then closed, as Node refuses one past maxConnections. */
  admit(): number | undefined;
  /** Once per admitted connection, at its end. */
  ended(end: NativeConnectionEnd): void;
  /** A Node internal was missing for an accepted connection, which was closed. */
  missing(what: string): void;
}

export interface NativeConnectionEnd {
  /** What admit() answered for it. */
  id: number;
  /** The client's address and port; undefined when it had gone before the relay saw it. */
  clientAddress: string | undefined;
  clientPort: number | undefined;
  /** Where it went; undefined when that was never known (ERR_NOT_REDIRECTED). */
  destinationAddress: string | undefined;
  destinationPort: number | undefined;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  /** The failure's code (ECONNREFUSED, ETIMEDOUT, ERR_PROXY_LOOP, ERR_NOT_REDIRECTED, ECONNRESET, ...); undefined for an orderly end. */
  code: string | undefined;
}

/** Why `server`'s connections cannot be accepted natively (undefined: they can). */
export function nativeAcceptUnavailable(server: Server): string | undefined {
  const { relayGroup, relayConnect, relayGroupDestroy, relayGroupClose } = binding;
  if ([relayGroup, relayConnect, relayGroupDestroy, relayGroupClose].some((f) => typeof f !== 'function')) return 'this build has no native relay';
  const missing = acceptTakeOverMissing(server);
  return missing === undefined ? undefined : `the Node internal ${missing} is not there`;
}

/** The native connections of one listening server. Check nativeAcceptUnavailable first. */
export class NativeAccepts {
  private readonly group: number;
  private open = 0;
  private readonly drainWaiters: (() => void)[] = [];

  constructor(
    server: Server,
    private readonly options: NativeAcceptOptions,
  ) {
    const { listening, target, mark, connectTimeout, idleTimeout, halfCloseTimeout } = options;
    const [host, port] = target === 'original' ? [null, 0] : [target.host, target.port];
    this.group = binding.relayGroup!(listening.address, listening.port, host, port, mark ?? -1, connectTimeout, idleTimeout, halfCloseTimeout, this.done);
    takeOverAccepts(server, (fd) => this.accept(fd), options.missing);
    server.once('close', () => binding.relayGroupClose!(this.group));
  }

  /** Connections relayed now. */
  get size(): number {
    return this.open;
  }

  /** Resolves once no connection is open. */
  drained(): Promise<void> {
    if (this.open === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Ends every open connection without an error (each still reports its end); answers how many. */
  destroyAll(): number {
    return binding.relayGroupDestroy!(this.group);
  }

  private accept(fd: number): void {
    const id = this.options.admit();
    if (id === undefined) return;
    try {
      binding.relayConnect!(fd, this.group, id);
      this.open++;
    } catch (error) {
      // Not even duplicated (out of descriptors): the caller closes Node's handle, which the client sees.
      const code = (error as { code?: unknown }).code;
      const gone = { clientAddress: undefined, clientPort: undefined, destinationAddress: undefined, destinationPort: undefined };
      this.report({ id, ...gone, bytesUp: 0, bytesDown: 0, durationMs: 0, code: typeof code === 'string' ? code : 'ERR_WFP_RELAY' });
    }
  }

  private readonly done: NativeConnectionDone = (id, bytesUp, bytesDown, durationMs, code, clientAddress, clientPort, destinationAddress, destinationPort) => {
    this.open--;
    this.report({ id, clientAddress, clientPort, destinationAddress, destinationPort, bytesUp, bytesDown, durationMs, code });
    if (this.open === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
  };

  /** A throwing log callback must not end the process (the JS path's one is inside a promise that swallows it too). */
  private report(end: NativeConnectionEnd): void {
    try {
      this.options.ended(end);
    } catch {
      // As above.
    }
  }
}
