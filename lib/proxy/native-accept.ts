// Accepting, connecting and relaying with no JavaScript per connection. Where
// nothing about a connection is decided in JavaScript (no route hook, rules,
// sniffing, process lookup, upstream proxy or start log) and where it goes is
// a fixed IP address or its netfilter original destination, TransparentProxy
// with `relay: 'native'` lets the addon accept from the server's listening
// socket itself (binding.relayGroupListen, on a duplicate; Node's own handle
// is closed then), decide each connection as the JS path would
// (ERR_NOT_REDIRECTED, ERR_PROXY_LOOP, maxConnections), connect the outbound
// socket and relay; JavaScript hears of the connection once, at its end, for
// the log line. No net.Socket is made for either side, and no JavaScript runs
// as a connection starts: those were most of what a connection cost (issue 28).
// A Node whose listening handle shows no descriptor gets the earlier way:
// Node accepts, and each descriptor goes to the addon (binding.relayConnect).
// Linux only, as the native relay is.
import type { Server } from 'node:net';
import { binding, type NativeConnectionDone } from '../native';
import { acceptTakeOverMissing, listeningDescriptor, takeOverAccepts } from '../node-internals';

export interface NativeAcceptOptions {
  /** Where the server listens (an IP address): a destination there is the proxy itself. */
  listening: { address: string; port: number };
  /** Where every connection goes (an IP address literal and a port), or 'original' for each one's netfilter original destination. */
  target: { host: string; port: number } | 'original';
  mark: number | undefined;
  connectTimeout: number;
  idleTimeout: number;
  halfCloseTimeout: number;
  /** The most connections relayed at once: one more is closed as it comes, as Node's server does. */
  maxConnections: number;
  /** Where Node accepts: the new connection's id (for its log line), or undefined when no more may be relayed now: it is then closed. */
  admit(): number | undefined;
  /** Where the addon accepts: the id of a connection, given as it ends (it has no line before that). */
  newId(): number;
  /** Where the addon accepts: `count` connections closed as they came (ERR_MAX_CONNECTIONS), or an accept's failure (EMFILE, ...). */
  refused(code: string, count: number): void;
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
  const { relayGroup, relayConnect, relayGroupDestroy, relayGroupClose, relayGroupSize } = binding;
  if ([relayGroup, relayConnect, relayGroupDestroy, relayGroupClose, relayGroupSize].some((f) => typeof f !== 'function')) return 'this build has no native relay';
  const missing = acceptTakeOverMissing(server);
  return missing === undefined ? undefined : `the Node internal ${missing} is not there`;
}

/** The native connections of one listening server. Check nativeAcceptUnavailable first. */
export class NativeAccepts {
  private readonly group: number;
  private accepting = true;
  private readonly drainWaiters: (() => void)[] = [];

  constructor(
    server: Server,
    private readonly options: NativeAcceptOptions,
  ) {
    const { listening, target, mark, connectTimeout, idleTimeout, halfCloseTimeout } = options;
    const [host, port] = target === 'original' ? [null, 0] : [target.host, target.port];
    this.group = binding.relayGroup!(listening.address, listening.port, host, port, mark ?? -1, connectTimeout, idleTimeout, halfCloseTimeout, this.done);
    if (this.listenNatively(server)) return;
    takeOverAccepts(server, (fd) => this.accept(fd), options.missing);
    server.once('close', () => this.close());
  }

  /** Lets the addon accept from the server's socket, and closes Node's handle of it; false where it cannot. */
  private listenNatively(server: Server): boolean {
    const fd = listeningDescriptor(server);
    if (typeof fd !== 'number' || typeof binding.relayGroupListen !== 'function') return false;
    try {
      binding.relayGroupListen(this.group, fd, this.options.maxConnections, (code, count) => this.refused(code, count));
    } catch {
      // Not even duplicated (out of descriptors): Node accepts, as before.
      return false;
    }
    // The socket stays open, listening, under the addon's duplicate.
    server.close();
    return true;
  }

  /** Accepts no more (the addon's listener closes); open connections go on. */
  close(): void {
    this.accepting = false;
    binding.relayGroupClose!(this.group);
  }

  /** Whether it still accepts (until close()). */
  get listening(): boolean {
    return this.accepting;
  }

  /** Connections relayed now (the addon counts them: it accepts some itself). */
  get size(): number {
    return binding.relayGroupSize!(this.group);
  }

  /** Resolves once no connection is open. */
  drained(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Cuts every open connection: each still reports its end, with ERR_PROXY_SHUTDOWN. Answers how many it cut. */
  cutAll(): number {
    return binding.relayGroupDestroy!(this.group, true);
  }

  private accept(fd: number): void {
    const id = this.options.admit();
    if (id === undefined) return;
    try {
      binding.relayConnect!(fd, this.group, id);
    } catch (error) {
      // Not even duplicated (out of descriptors): the caller closes Node's handle, which the client sees.
      const code = (error as { code?: unknown }).code;
      const gone = { clientAddress: undefined, clientPort: undefined, destinationAddress: undefined, destinationPort: undefined };
      this.report({ id, ...gone, bytesUp: 0, bytesDown: 0, durationMs: 0, code: typeof code === 'string' ? code : 'ERR_WFP_RELAY' });
    }
  }

  /** A throwing callback must not end the process: it runs from the loop, where it would. */
  private refused(code: string, count: number): void {
    try {
      this.options.refused(code, count);
    } catch {
      // As report().
    }
  }

  private readonly done: NativeConnectionDone = (logId, bytesUp, bytesDown, durationMs, code, clientAddress, clientPort, destinationAddress, destinationPort) => {
    const id = logId === 0 ? this.options.newId() : logId;
    this.report({ id, clientAddress, clientPort, destinationAddress, destinationPort, bytesUp, bytesDown, durationMs, code });
    // The addon has let go of this one already.
    if (this.size === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
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
