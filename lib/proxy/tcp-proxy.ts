// The transparent proxy behind bin/wfp-redirect-proxy, exported for programs
// that want the relay without the CLI: per connection, learn where it was
// going, let the `route` hook change or refuse that, open an outbound
// connection that carries the redirect records, and relay both ways with
// backpressure and half-close.
import net from 'node:net';
import { connectRedirected } from '../connect';
import { invalidArgType, notRedirected, outOfRange, WfpRedirectError } from '../errors';
import { isSupported, queryRedirectRecords } from '../redirect';

export interface Destination {
  host: string;
  port: number;
}

/** Where a connection goes: a fixed upstream, or what the accepted socket says (getOriginalDestination). */
export type DestinationSource =
  | { kind: 'upstream'; upstream: Destination }
  | { kind: 'resolver'; resolve: (socket: net.Socket) => Promise<Destination> };

export interface ProxyOptions {
  listen: Destination;
  destination: DestinationSource;
  /** Idle time, in ms, after which a connection is closed; 0 for none. Default 300000. */
  idleTimeout?: number;
  /** Time, in ms, the outbound connection may take. Default 10000. */
  connectTimeout?: number;
  /** Connections relayed at once; more are refused. Default 1024. */
  maxConnections?: number;
  /** One call per finished connection. */
  log?: (entry: ConnectionLog) => void;
  /**
   * Per connection, once its destination is known: return another destination
   * to go there instead, `null` to refuse the connection (logged as
   * `ERR_PROXY_REFUSED`), or nothing to go on as planned.
   */
  route?: (connection: RouteRequest) => RouteAnswer | Promise<RouteAnswer>;
}

export interface RouteRequest {
  /** The accepted connection (paused: nothing has been read from it yet). */
  socket: net.Socket;
  destination: Destination;
  /** The redirect records the outbound connection will carry, where there are any. */
  records: Buffer | undefined;
}

export type RouteAnswer = Destination | null | undefined;

export interface ConnectionLog {
  id: number;
  client: string;
  destination?: string;
  records: number;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  error?: string;
}

export function formatEndpoint(host: string | undefined, port: number | undefined): string {
  return host?.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const NO_RECORDS = new Set<string>(['WSAEINVAL', 'WSAEOPNOTSUPP', 'WSAENOPROTOOPT']);

function code(error: unknown): string {
  const { code: value, message } = error as { code?: unknown; message?: string };
  return typeof value === 'string' ? value : String(message ?? error);
}

/** The destination a route hook's answer means; throws for a refusal or a malformed answer. */
function routed(answer: unknown, planned: Destination): Destination {
  if (answer === undefined) return planned;
  if (answer === null) throw Object.assign(new Error('refused by the route hook'), { code: 'ERR_PROXY_REFUSED' });
  const { host, port } = answer as Partial<Destination>;
  if (typeof host !== 'string' || typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw Object.assign(new TypeError('The route hook must return { host, port }, null or nothing'), { code: 'ERR_INVALID_RETURN_VALUE' });
  }
  return { host, port };
}

export class TransparentProxy {
  readonly server: net.Server;
  /** The accepted sockets of the connections being relayed. */
  private readonly clients = new Set<net.Socket>();
  /** Every socket still open, both ends of each relay: what a shutdown cuts. */
  private readonly open = new Set<net.Socket>();
  private nextId = 0;

  private readonly options: Required<Omit<ProxyOptions, 'route'>> & Pick<ProxyOptions, 'route'>;

  constructor(options: ProxyOptions) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    // `?? default`, not a spread: an option given as undefined takes its default.
    this.options = {
      ...options,
      idleTimeout: options.idleTimeout ?? 300_000,
      connectTimeout: options.connectTimeout ?? 10_000,
      maxConnections: options.maxConnections ?? 1024,
      log: options.log ?? (() => {}),
    };
    for (const name of ['idleTimeout', 'connectTimeout', 'maxConnections'] as const) {
      const value = this.options[name];
      if (!Number.isSafeInteger(value) || value < (name === 'maxConnections' ? 1 : 0)) {
        throw outOfRange('ERR_OUT_OF_RANGE', `options.${name} must be a whole number${name === 'maxConnections' ? ' of at least 1' : ''}. Received ${String(value)}`);
      }
    }
    for (const name of ['log', 'route'] as const) {
      if (this.options[name] !== undefined && typeof this.options[name] !== 'function') throw invalidArgType(`options.${name}`, 'a function', this.options[name]);
    }
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (inbound) => {
      this.relay(inbound).catch(() => inbound.destroy());
    });
    this.server.maxConnections = this.options.maxConnections;
  }

  async listen(): Promise<net.AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.listen.port, this.options.listen.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as net.AddressInfo;
  }

  /** Connections being relayed (one per client, however many sockets each has open). */
  get connections(): number {
    return this.clients.size;
  }

  /** Stops accepting; open connections may finish until `deadlineMs`, then are cut. Resolves to how many connections were cut. */
  async shutdown(deadlineMs: number): Promise<number> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const timer = new Promise<'deadline'>((resolve) => setTimeout(resolve, deadlineMs, 'deadline').unref());
    if ((await Promise.race([closed, timer])) !== 'deadline') return 0;
    const cut = this.clients.size;
    for (const socket of this.open) socket.destroy();
    await closed;
    return cut;
  }

  private async destinationOf(inbound: net.Socket): Promise<Destination> {
    const source = this.options.destination;
    return source.kind === 'upstream' ? source.upstream : source.resolve(inbound);
  }

  /**
   * The records to carry on, where the platform has them. With a fixed
   * upstream, a connection that has none (nobody redirected it: WSAEINVAL; a
   * provider without the IOCTLs: WSAEOPNOTSUPP, WSAENOPROTOOPT) goes on
   * without; where the destination comes from the redirect, that is an error.
   */
  private async recordsOf(inbound: net.Socket): Promise<Buffer | undefined> {
    if (!isSupported()) return undefined;
    try {
      return await queryRedirectRecords(inbound);
    } catch (error) {
      if (!(error instanceof WfpRedirectError) || !NO_RECORDS.has(error.code)) throw error;
      if (this.options.destination.kind === 'upstream') return undefined;
      // As on Linux, where netfilter has no record of such a connection.
      if (error.code === 'WSAEINVAL') throw notRedirected('the socket has no WFP redirect records (no callout redirected it to this process)', error);
      throw error;
    }
  }

  private async relay(inbound: net.Socket): Promise<void> {
    const id = ++this.nextId;
    const started = Date.now();
    const client = formatEndpoint(inbound.remoteAddress, inbound.remotePort);
    const entry: ConnectionLog = { id, client, destination: undefined, records: 0, bytesUp: 0, bytesDown: 0, durationMs: 0 };
    this.clients.add(inbound);
    this.open.add(inbound);
    let outbound: net.Socket | undefined;
    const fail = (error: unknown) => {
      entry.error ??= code(error);
      inbound.destroy();
      outbound?.destroy();
    };
    inbound.on('error', fail);
    const inboundClosed = new Promise<void>((resolve) => inbound.once('close', () => resolve()));

    try {
      const records = await this.recordsOf(inbound);
      entry.records = records?.length ?? 0;
      let destination = await this.destinationOf(inbound);
      entry.destination = formatEndpoint(destination.host, destination.port);
      if (this.options.route) {
        destination = routed(await this.options.route({ socket: inbound, destination, records }), destination);
        entry.destination = formatEndpoint(destination.host, destination.port);
      }
      if (inbound.destroyed) throw Object.assign(new Error('client went away'), { code: 'ECONNRESET' });
      const out = connectRedirected({ host: destination.host, port: destination.port, redirectRecords: records, allowHalfOpen: true, timeout: this.options.connectTimeout });
      outbound = out;
      this.open.add(out);
      out.on('error', fail);
      out.once('timeout', () => fail(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      await new Promise<void>((resolve, reject) => {
        out.once('connect', resolve);
        out.once('close', () => reject(new Error(entry.error ?? 'closed before connecting')));
      });
      out.removeAllListeners('timeout');
      out.setTimeout(this.options.idleTimeout);
      inbound.setTimeout(this.options.idleTimeout);
      const idle = () => fail(Object.assign(new Error('idle'), { code: 'ERR_IDLE_TIMEOUT' }));
      out.on('timeout', idle);
      inbound.on('timeout', idle);
      // pipe() keeps to the slower side and, on one side's end, ends the other (half-close).
      inbound.pipe(out);
      out.pipe(inbound);
      inbound.resume();
      await Promise.all([inboundClosed, new Promise((resolve) => out.once('close', resolve))]);
    } catch (error) {
      fail(error);
      await inboundClosed;
    } finally {
      entry.bytesUp = outbound?.bytesWritten ?? 0;
      entry.bytesDown = inbound.bytesWritten;
      entry.durationMs = Date.now() - started;
      this.clients.delete(inbound);
      this.open.delete(inbound);
      if (outbound) this.open.delete(outbound);
      this.options.log(entry);
    }
  }
}
