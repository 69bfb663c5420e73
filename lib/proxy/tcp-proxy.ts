// The transparent proxy behind bin/wfp-redirect-proxy, exported for programs
// that want the relay without the CLI: per connection, learn where it was
// going, let the `route` hook change or refuse that, open an outbound
// connection that carries the redirect records, and relay both ways with
// backpressure and half-close.
import net from 'node:net';
import { checkMark, connectRedirected, probeMark } from '../connect';
import { invalidArgType, notRedirected, outOfRange, WfpRedirectError } from '../errors';
import { isSupported, probeRedirectIoctls, queryRedirectRecords } from '../redirect';
import { getOriginalDestination, type OriginalDestinationOptions } from '../original-destination';
import { describeProcess, ProcessLookup, type ProcessInfo } from '../process';
import { sniffStream, type SniffStreamOptions, type StreamSniff } from '../sniff/stream';
import { connectVia } from '../upstream/connect-via';
import { parseUpstream, type Upstream } from '../upstream/url';
import { codeOf, coded, endpointKey, formatEndpoint, isListeningEndpoint, loopError, withoutThrowing } from './endpoints';
import { RateLimitedReport, REPORT_INTERVAL_MS } from './rate-limited-report';
import { checkUpstream } from './upstream-check';
import type { MatchFacts, Verdict } from './rules/matcher';
import { connectedToItself, selfConnectError } from '../self-connect';
import { fallbackNotice, handOver, handOverWhenBulky, nativeRelayUnavailable, type NativeRelay, type RelayEngine } from './native-relay';
import { NativeAccepts, nativeAcceptUnavailable, type NativeConnectionEnd } from './native-accept';

export { formatEndpoint } from './endpoints';
export type { RelayEngine } from './native-relay';

export interface Destination {
  host: string;
  port: number;
}

/**
 * Where a connection goes: a fixed upstream; its original destination
 * (getOriginalDestination with these options: netfilter on Linux, the WFP
 * redirect context on Windows); or what a resolver says of the accepted
 * socket. A resolver may answer `{ host, port }` or what
 * getOriginalDestination answers (`{ address, port }`), so that it can be
 * passed straight through.
 */
export type DestinationSource =
  | { kind: 'upstream'; upstream: Destination }
  | ({ kind: 'original' } & Pick<OriginalDestinationOptions, 'contextOffset' | 'decode' | 'layout'>)
  | { kind: 'resolver'; resolve: (socket: net.Socket) => Promise<Destination | { address: string; port: number }> };

export interface ProxyOptions {
  listen: Destination;
  destination: DestinationSource;
  /** Idle time, in ms, after which a connection is closed; 0 for none. Default 300000. */
  idleTimeout?: number | undefined;
  /** Time, in ms, the outbound connection may take. Default 10000. */
  connectTimeout?: number | undefined;
  /**
   * Time, in ms, from accepting a connection until its destination is decided:
   * the redirect records and original destination looked up, the `route` hook
   * answered. Past it the connection is closed (`ERR_PROXY_ROUTE_TIMEOUT`).
   * With `connectTimeout` it bounds how long a client waits before its bytes
   * can go anywhere. Default 10000; at least 1.
   */
  routeTimeout?: number | undefined;
  /**
   * Once one side has ended its half (sent FIN), the connection is closed
   * after this long, in ms, with nothing moving the other way
   * (`ERR_HALF_CLOSE_TIMEOUT`), in place of `idleTimeout`; 0 for none.
   * Default 30000.
   */
  halfCloseTimeout?: number | undefined;
  /** Connections relayed at once; more are refused. Default 1024. */
  maxConnections?: number | undefined;
  /** One call per finished connection. */
  log?: ((entry: ConnectionLog) => void) | undefined;
  /** One call per connection once its destination is decided, before it connects (the CLI's --log-start). */
  logStart?: ((entry: ConnectionLog) => void) | undefined;
  /**
   * Per connection, once its destination is known: return another destination
   * to go there instead, `null` to refuse the connection (logged as
   * `ERR_PROXY_REFUSED`), or nothing to go on as planned.
   */
  route?: ((connection: RouteRequest) => RouteAnswer | Promise<RouteAnswer>) | undefined;
  /**
   * Read each connection's first bytes (at most `maxBytes`, at most
   * `timeoutMs`: a protocol whose server speaks first is held that long) for
   * the name they give: a TLS ClientHello's SNI or an HTTP/1.x request's host.
   * The route hook and the log get it; every byte read goes to the
   * destination first, unchanged. Default off.
   */
  sniff?: boolean | SniffStreamOptions | undefined;
  /**
   * Send every connection through this upstream proxy: a `socks5://`,
   * `socks5h://` or `http://` URL (see parseUpstream) or a parsed Upstream.
   * The redirect records and the mark go on the socket to the upstream, before
   * it connects. The route hook may name another, per connection.
   */
  via?: string | Upstream | undefined;
  /**
   * Rules (the CLI's --config; lib/proxy/rules' RuleSet or RuleMatcher),
   * asked per connection before the route hook: direct, through an upstream
   * (in place of `via`), or block (the client gets a reset, logged
   * ERR_PROXY_BLOCKED). Where a rule wants a domain, connections are sniffed
   * even without `sniff`. Read per connection: a reloaded set applies to new
   * connections only.
   */
  rules?: RuleSource | undefined;
  /**
   * Linux: listen with SO_REUSEPORT, so that several processes can each have a
   * socket on the same port and the kernel spreads connections among them
   * (what the CLI's --workers does). Default false.
   */
  reusePort?: boolean | undefined;
  /**
   * How bytes move once a connection is set up: `'streams'` (default), Node
   * streams (pipe); `'native'`, in the addon, never crossing into JavaScript
   * (Linux and Windows; elsewhere, or where a pair cannot be taken over, it
   * falls back to streams and `warn` says so once). With `'native'` and nothing decided per
   * connection in JavaScript (no route, rules, sniff, processLookup, via or
   * logStart; a fixed upstream at an IP address, or kind 'original'), the
   * addon accepts, connects and relays each connection itself: no net.Socket
   * is made, and `log` still gets one entry per connection.
   */
  relay?: RelayEngine | undefined;
  /**
   * With relay 'native', for a connection accepted in JavaScript: the bytes
   * (both ways together) it relays on streams before it is handed to the
   * native relay; 0, at once. Default 0 on Linux; on Windows 256 KiB, where
   * setting a pair up natively (its SOCKETs found, duplicated and polled)
   * costs more than a short connection gains, so only bulk ones pay it.
   */
  nativeAfter?: number | undefined;
  /** Linux: SO_MARK on every outbound connection (connectRedirected's `mark`), for firewall exemptions. */
  mark?: number | undefined;
  /**
   * Look up the process behind each connection whose client is on this host
   * (lookupProcess), within `routeTimeout`; the route hook and the log get it.
   * Default off.
   */
  processLookup?: boolean | undefined;
  /**
   * Conditions of the proxy as a whole, as one line of text: at most one per
   * kind every 10 s (running out of file descriptors, refused loops).
   */
  warn?: ((message: string) => void) | undefined;
}

/** What the proxy asks of its rules. */
export interface RuleSource {
  match(facts: MatchFacts): Verdict;
  /** Whether any rule wants a domain: connections are then sniffed. */
  readonly wantsDomain: boolean;
  /** Whether any rule names a process: connections' processes are then looked up. */
  readonly wantsProcess: boolean;
}

export interface RouteRequest {
  /**
   * The accepted connection, paused. Nothing has been read from it, unless
   * `sniff` is on: then `sniffed.bytes` were, and go to the destination first.
   */
  socket: net.Socket;
  destination: Destination;
  /** The redirect records the outbound connection will carry, where there are any. */
  records: Buffer | undefined;
  /** With `sniff`: the name the connection's first bytes gave (TLS SNI, HTTP Host), and how. */
  domain: string | undefined;
  /** How `domain` was learned ('none' when sniffed without a name; undefined when not sniffed). */
  learned: Learned | undefined;
  sniffed: StreamSniff | undefined;
  /** With `processLookup` (or rules that name a process): the process behind the connection, where its client is on this host and it is known. */
  process?: ProcessInfo | undefined;
  /** With `rules`: the rule that decided (its name, its path like rules[2], or "default"); the answer then carries its upstream, if any. */
  rule: string | undefined;
}

/** Go to `host:port` (through the upstream `via`, when given; `null` for none even where the proxy has one), refuse (null), or go on as planned. */
export type RouteAnswer = (Destination & { via?: string | Upstream | null | undefined }) | null | undefined;

/** What deciding a connection gives: the records it carries, where it goes, and bytes read from it already. */
interface Decision {
  records: Buffer | undefined;
  destination: Destination;
  /** The upstream proxy to go through, if any. */
  via: Upstream | undefined;
  replay: Buffer | undefined;
}

/** What relay() holds of a JavaScript-accepted connection, besides its log entry, as each part comes to be. */
interface Carried {
  outbound: net.Socket | undefined;
  native: NativeRelay | undefined;
  /** What the outbound socket had written before the client's bytes (an upstream's handshake). */
  handshakeBytes: number;
}

export interface ConnectionLog {
  id: number;
  client: string;
  destination?: string;
  /** With `sniff`: the name the first bytes gave, and how it was learned. */
  domain?: string;
  learned?: Learned;
  /** The upstream proxy the connection went through, without credentials. */
  via?: string;
  /** The process behind the connection, where it is known. */
  process?: ProcessInfo;
  /** With `rules`: the rule that decided (its name, rules[N], or "default"). */
  rule?: string;
  records: number;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  error?: string;
}


/** `promise`, or a rejection with `code` once `ms` have passed: a hook or lookup that never answers must not hold a connection. */
async function within<T>(promise: Promise<T>, ms: number, code: string, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    // unref: a deadline alone must not keep the process alive.
    timer = setTimeout(() => reject(coded(`${what} took more than ${ms} ms`, code)), ms).unref();
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** How a connection's domain was learned: TLS SNI (the outer name under ECH), an HTTP Host field or request target, or not at all. */
export type Learned = 'sni' | 'ech-outer-sni' | 'http-host' | 'http-target' | 'none';

function learnedFrom({ result }: StreamSniff): { domain?: string; learned: Learned } {
  if (result.kind !== 'found') return { learned: 'none' };
  if (result.protocol === 'tls') return { domain: result.name, learned: result.ech ? 'ech-outer-sni' : 'sni' };
  return { domain: result.name, learned: result.from === 'host-header' ? 'http-host' : 'http-target' };
}

/** An IPv4-mapped IPv6 address as IPv4. */
function unmappedHost(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** The file-descriptor (socket) limit, as each OS names it. */
const OUT_OF_DESCRIPTORS = new Set(['EMFILE', 'ENFILE', 'WSAEMFILE', 'WSAENOBUFS', 'ENOBUFS']);


/** A connection a rule blocks: its client gets a reset. */
const BLOCKED = 'ERR_PROXY_BLOCKED';

const NO_RECORDS = new Set<string>(['WSAEINVAL', 'WSAEOPNOTSUPP', 'WSAENOPROTOOPT']);


/** What a route hook's answer means: where to go and through which upstream; throws for a refusal or a malformed answer. */
function routed(answer: unknown, planned: Destination, via: Upstream | undefined): { destination: Destination; via: Upstream | undefined } {
  if (answer === undefined) return { destination: planned, via };
  if (answer === null) throw Object.assign(new Error('refused by the route hook'), { code: 'ERR_PROXY_REFUSED' });
  const { host, port, via: answered } = answer as Partial<Destination> & { via?: unknown };
  if (typeof host !== 'string' || typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw Object.assign(new TypeError('The route hook must return { host, port, via? }, null or nothing'), { code: 'ERR_INVALID_RETURN_VALUE' });
  }
  if (answered === undefined) return { destination: { host, port }, via };
  return { destination: { host, port }, via: answered === null ? undefined : parseUpstream(answered as string | Upstream) };
}

export class TransparentProxy {
  /**
   * Node's server. Where the addon accepts (relay 'native' with nothing
   * decided per connection, Linux) its handle is closed once it listens: the
   * listening socket is the addon's then, the server emits no 'connection',
   * and `shutdown()` (not `server.close()`) stops accepting.
   */
  readonly server: net.Server;
  /**
   * The accepted sockets of the connections being relayed, each with what a shutdown's deadline calls to cut its
   * connection: false, changing nothing, for one that has ended by itself and is still to be logged.
   */
  private readonly clients = new Map<net.Socket, (error: Error) => boolean>();
  /** Every socket still open, both ends of each relay: what a shutdown cuts. */
  private readonly open = new Set<net.Socket>();
  private nextId = 0;

  private readonly options: Required<Omit<ProxyOptions, 'route' | 'mark' | 'reusePort' | 'logStart' | 'sniff' | 'via' | 'processLookup' | 'rules'>> &
    Pick<ProxyOptions, 'route' | 'mark' | 'reusePort' | 'logStart' | 'rules'> & { sniff: SniffStreamOptions | undefined };
  /**
   * This proxy's open outbound connections, as "local -> remote" endpoint
   * pairs: an inbound connection from such a local endpoint, going to that
   * remote endpoint (its original destination) or straight to this proxy, is
   * one of them come back: a loop. (The local endpoint alone would not do: a
   * client on this host can have the same local port towards the proxy.)
   */
  private readonly ownConnections = new Set<string>();
  /** Outbound connections not connected yet, and the endpoint each is dialling. */
  private readonly connecting = new Map<net.Socket, string>();
  private readonly loops: RateLimitedReport;
  private readonly descriptors: RateLimitedReport;
  private readonly full: RateLimitedReport;
  private readonly acceptFailures: RateLimitedReport;
  private lastAcceptFailure = '';
  /** The upstream proxy every connection goes through, unless the route hook says otherwise. */
  private readonly via: Upstream | undefined;
  /** Where the server listens, once it does (asked once: server.address() is a system call). */
  private listening: net.AddressInfo | undefined;
  /** With `processLookup`: the lookup, with its cache. */
  private readonly processes: ProcessLookup | undefined;
  /** processLookup: every connection's process, not only while a rule names one. */
  private readonly lookUpAlways: boolean;
  /** With `processLookup`: the process id a resolver's answer carried (a `wfpr` context's), per connection. */
  private readonly contextPids = new WeakMap<net.Socket, number>();
  /** The connections accepted, connected and relayed natively, where nothing is decided per connection (nativeTarget). */
  private nativeAccepts: NativeAccepts | undefined;
  private missingSaid = false;
  /** The relay() of each connection accepted in JavaScript, until it has logged its end. */
  private readonly relays = new Set<Promise<void>>();
  /** A shutdown not finished yet: listen() waits for it, and a second shutdown() joins it. */
  private stopping: Promise<number> | undefined;

  constructor(options: ProxyOptions) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    // `?? default`, not a spread: an option given as undefined takes its default.
    const { via: _via, processLookup: _processLookup, ...rest } = options;
    this.options = {
      ...rest,
      idleTimeout: options.idleTimeout ?? 300_000,
      connectTimeout: options.connectTimeout ?? 10_000,
      routeTimeout: options.routeTimeout ?? 10_000,
      halfCloseTimeout: options.halfCloseTimeout ?? 30_000,
      maxConnections: options.maxConnections ?? 1024,
      relay: options.relay ?? 'streams',
      nativeAfter: options.nativeAfter ?? (process.platform === 'win32' ? 256 * 1024 : 0),
      log: options.log ?? (() => {}),
      warn: options.warn ?? (() => {}),
      sniff: options.sniff === true ? {} : options.sniff || undefined,
    };
    if (options.mark !== undefined) checkMark(options.mark);
    this.via = options.via === undefined ? undefined : parseUpstream(options.via);
    // Bounded well inside the route deadline (a connection may need two lookups): a slow lookup makes the process unknown, never the connection fail.
    this.lookUpAlways = options.processLookup === true;
    this.processes = options.processLookup || options.rules ? new ProcessLookup({ timeoutMs: Math.max(1, Math.min(1000, Math.floor(this.options.routeTimeout / 4))) }) : undefined;
    this.loops = new RateLimitedReport((count, first) =>
      this.options.warn(
        first
          ? 'refused a connection that is this proxy\'s own (ERR_PROXY_LOOP): a redirect rule sends the proxy\'s outbound connections back to it. Exempt them (Linux: --mark with "-m mark ! --mark N", or an owner match; Windows: the callout must honour the records)'
          : `refused ${count} more looping connection(s) (ERR_PROXY_LOOP) in the last ${REPORT_INTERVAL_MS / 1000} s`,
      ),
    );
    this.descriptors = new RateLimitedReport((count, first) =>
      this.options.warn(
        first
          ? 'out of file descriptors (EMFILE/ENFILE): new connections are refused until some close; raise the limit (ulimit -n) or lower --max-connections'
          : `still at the file-descriptor limit: ${count} more connection(s) refused in the last ${REPORT_INTERVAL_MS / 1000} s`,
      ),
    );
    this.full = new RateLimitedReport((count, first) =>
      this.options.warn(
        first
          ? `refused a connection: ${this.options.maxConnections} (maxConnections, --max-connections) are open; it was closed as it came`
          : `still at maxConnections: ${count} more connection(s) refused in the last ${REPORT_INTERVAL_MS / 1000} s`,
      ),
    );
    this.acceptFailures = new RateLimitedReport((count, first) =>
      this.options.warn(
        first
          ? `accepting a connection failed: ${this.lastAcceptFailure}; the proxy goes on accepting`
          : `accepting failed ${count} more time(s) in the last ${REPORT_INTERVAL_MS / 1000} s (last: ${this.lastAcceptFailure})`,
      ),
    );
    for (const [name, least] of [['idleTimeout', 0], ['connectTimeout', 0], ['routeTimeout', 1], ['halfCloseTimeout', 0], ['maxConnections', 1], ['nativeAfter', 0]] as const) {
      const value = this.options[name];
      if (!Number.isSafeInteger(value) || value < least) {
        throw outOfRange('ERR_OUT_OF_RANGE', `options.${name} must be a whole number${least ? ` of at least ${least}` : ''}. Received ${String(value)}`);
      }
    }
    if (this.options.relay !== 'native' && this.options.relay !== 'streams') throw invalidArgType('options.relay', "'native' or 'streams'", options.relay);
    if (options.sniff !== undefined && typeof options.sniff !== 'boolean' && (options.sniff === null || typeof options.sniff !== 'object')) {
      throw invalidArgType('options.sniff', 'a boolean or { maxBytes, timeoutMs }', options.sniff);
    }
    if (options.rules !== undefined && (options.rules === null || typeof options.rules.match !== 'function')) throw invalidArgType('options.rules', 'a RuleSet or RuleMatcher', options.rules);
    for (const name of ['log', 'logStart', 'route', 'warn'] as const) {
      if (this.options[name] !== undefined && typeof this.options[name] !== 'function') throw invalidArgType(`options.${name}`, 'a function', this.options[name]);
    }
    this.options.warn = withoutThrowing(this.options.warn);
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (inbound) => {
      const relaying = this.relay(inbound).catch(() => void inbound.destroy());
      // shutdown() waits for each connection's log line, written as its relay() ends.
      this.relays.add(relaying);
      void relaying.then(() => this.relays.delete(relaying));
    });
    this.server.maxConnections = this.options.maxConnections;
    // Node closes a connection past maxConnections as it comes: said, as every limit reached is.
    this.server.on('drop', () => this.full.note());
    // An accept that fails (EMFILE, ...) must not end the proxy: libuv refuses
    // the connection and goes on accepting once descriptors are free again.
    this.server.on('error', (error: NodeJS.ErrnoException) => {
      // Before it listens, an error is listen()'s own (EADDRINUSE ...), which listen() rejects with.
      if (!this.server.listening) return;
      if (OUT_OF_DESCRIPTORS.has(error.code ?? '')) this.descriptors.note();
      else this.noteAcceptFailure(error.code ?? error.message);
    });
  }

  /** An accept that failed for a reason other than descriptors: said at once, then counted (rate-limited). */
  private noteAcceptFailure(code: string, count = 1): void {
    this.lastAcceptFailure = code;
    this.acceptFailures.note(count);
  }

  async listen(): Promise<net.AddressInfo> {
    if (this.options.mark !== undefined) probeMark(this.options.mark);
    // Listening again while a shutdown still runs would mix the old connections' bookkeeping with the new ones'.
    // (Only then awaited: an await of nothing would still yield, and a shutdown() right after listen() would come first.)
    if (this.stopping) await this.stopping;
    // Node's server says so itself, but where the addon accepts its handle is closed: the listener would be lost.
    if (this.nativeAccepts?.listening) throw coded('listen() was called again while the proxy listens; shutdown() first', 'ERR_SERVER_ALREADY_LISTEN');
    await new Promise<void>((resolve, reject) => {
      const settled = () => {
        this.server.off('error', failed);
        this.server.off('close', closedFirst);
      };
      const failed = (error: Error) => {
        settled();
        reject(error);
      };
      // shutdown() before the server listens (a host still being looked up): Node drops the listen without a word.
      const closedFirst = () => failed(coded('The proxy was shut down before it listened', 'ERR_SERVER_NOT_RUNNING'));
      this.server.once('error', failed);
      this.server.once('close', closedFirst);
      const { port, host } = this.options.listen;
      // exclusive: in a cluster worker, a socket of its own rather than the primary's.
      const reuse = this.options.reusePort ? { reusePort: true, exclusive: true } : {};
      this.server.listen({ port, host, ...reuse }, () => {
        settled();
        resolve();
      });
    });
    this.listening = this.server.address() as net.AddressInfo;
    try {
      if (this.options.destination.kind === 'upstream') await checkUpstream(this.options.destination.upstream, this.listening, this.options.warn);
      if (this.via) await checkUpstream(this.via, this.listening, this.options.warn);
    } catch (error) {
      await new Promise((resolve) => this.server.close(resolve));
      throw error;
    }
    this.acceptNatively();
    // Said at start-up where the platform has no native relay (each connection would otherwise find out).
    const noNative = this.options.relay === 'native' ? nativeRelayUnavailable() : undefined;
    const notice = noNative && fallbackNotice(this, noNative);
    if (notice) this.options.warn(notice);
    const ioctls = probeRedirectIoctls();
    if (ioctls === 'WSAEOPNOTSUPP' || ioctls === 'WSAENOPROTOOPT') {
      this.options.warn(
        `this system's Winsock answers the WFP redirect IOCTLs with ${ioctls}: it has no support for them (Wine has none), so no connection will have ` +
          `redirect records or a context${this.options.destination.kind === 'upstream' ? '' : ', and every connection will fail with ERR_NOT_REDIRECTED'}`,
      );
    }
    return this.listening;
  }

  /** Connections being relayed (one per client, however many sockets each has open). */
  get connections(): number {
    return this.clients.size + (this.nativeAccepts?.size ?? 0);
  }

  /**
   * Stops accepting; open connections may finish until `deadlineMs`, then are cut. Resolves, once every connection
   * has been logged, to how many were cut. A call while one runs waits for it and resolves to 0.
   */
  async shutdown(deadlineMs: number): Promise<number> {
    if (this.stopping) return this.stopping.then(() => 0);
    this.stopping = this.stop(deadlineMs);
    try {
      return await this.stopping;
    } finally {
      this.stopping = undefined;
    }
  }

  private async stop(deadlineMs: number): Promise<number> {
    this.loops.stop();
    this.descriptors.stop();
    this.full.stop();
    this.acceptFailures.stop();
    const accepts = this.nativeAccepts;
    // Node's server counts only the connections it made sockets of: the native ones are waited for too.
    // (Where the addon accepts, Node's handle is closed already: close() then just says so, and the addon's listener closes.)
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve())).then(() => accepts?.drained());
    accepts?.close();
    const timer = new Promise<'deadline'>((resolve) => setTimeout(resolve, deadlineMs, 'deadline').unref());
    let cut = 0;
    if ((await Promise.race([closed, timer])) === 'deadline') {
      cut = accepts?.cutAll() ?? 0;
      // Each is logged ERR_PROXY_SHUTDOWN; one that had ended by itself (its line still to come) keeps its end.
      const deadline = coded('cut at the shutdown deadline', 'ERR_PROXY_SHUTDOWN');
      for (const cutOne of this.clients.values()) if (cutOne(deadline)) cut++;
      // Whatever socket is left of a connection that had ended by itself.
      for (const socket of this.open) socket.destroy();
      await closed;
    }
    // Each connection's line is written as its relay() ends, a few ticks after its sockets closed.
    await Promise.all(this.relays);
    return cut;
  }

  /**
   * Where every connection goes when nothing about one is decided in
   * JavaScript (a fixed upstream at an IP address, or each one's netfilter
   * original destination; no route hook, rules, sniffing, process lookup,
   * upstream proxy, start log or redirect records), so that the native relay
   * can accept, connect and relay it on its own; undefined otherwise.
   */
  private nativeTarget(): Destination | 'original' | undefined {
    const { relay, destination, route, rules, sniff, logStart } = this.options;
    if (relay !== 'native' || destination.kind === 'resolver' || isSupported()) return undefined;
    if (this.via || route || rules || sniff || logStart || this.processes) return undefined;
    if (destination.kind === 'original') return 'original';
    // A name is looked up per connection by net.connect; the native path dials addresses only.
    const { host, port } = destination.upstream;
    return net.isIP(host) === 0 || host.includes('%') ? undefined : { host, port };
  }

  /** Once listening: where nativeTarget allows, Node's accepted descriptors go to the native relay from now on. */
  private acceptNatively(): void {
    const target = this.nativeTarget();
    if (!target || !this.listening) return;
    const unavailable = nativeAcceptUnavailable(this.server);
    if (unavailable) {
      // Once per listen(): each connection is then accepted in JavaScript and handed over when set up.
      this.options.warn(`connections are accepted and connected in JavaScript, then relayed natively: ${unavailable}`);
      return;
    }
    const { connectTimeout, idleTimeout, halfCloseTimeout, maxConnections, mark } = this.options;
    this.nativeAccepts = new NativeAccepts(this.server, {
      listening: this.listening,
      target,
      mark,
      connectTimeout,
      idleTimeout,
      halfCloseTimeout,
      maxConnections,
      admit: () => {
        if (this.connections < maxConnections) return ++this.nextId;
        // Closed as Node closes one past maxConnections, and said as that is.
        this.full.note();
        return undefined;
      },
      newId: () => ++this.nextId,
      refused: (code, count) => {
        if (code === 'ERR_MAX_CONNECTIONS') this.full.note(count);
        else if (OUT_OF_DESCRIPTORS.has(code)) this.descriptors.note(count);
        // The addon's listener rests 100 ms and tries again: a lasting condition would say so ten times a second.
        else this.noteAcceptFailure(code, count);
      },
      ended: (end) => this.nativeEnded(end, target),
      missing: (what) => {
        // Said once: every accepted connection would be closed so (a Node whose accepted handles have no descriptor).
        if (!this.missingSaid) this.options.warn(`connections are closed as they are accepted: the Node internal ${what} is not there; use relay: 'streams' (--relay streams)`);
        this.missingSaid = true;
      },
    });
  }

  /** A native connection's log entry, as the JS path makes it. */
  private nativeEnded(end: NativeConnectionEnd, target: Destination | 'original'): void {
    // A fixed upstream as it was given; an original destination as the addon spells it (none when it was never known).
    const destination =
      target !== 'original' ? formatEndpoint(target.host, target.port) : end.destinationAddress === undefined ? undefined : formatEndpoint(end.destinationAddress, end.destinationPort);
    const entry: ConnectionLog = {
      id: end.id,
      client: formatEndpoint(end.clientAddress, end.clientPort),
      destination,
      records: 0,
      bytesUp: end.bytesUp,
      bytesDown: end.bytesDown,
      durationMs: end.durationMs,
    };
    if (end.code !== undefined) entry.error = end.code;
    if (end.code !== undefined && OUT_OF_DESCRIPTORS.has(end.code)) this.descriptors.note();
    // A refused loop after the first in an interval is counted in the warning, not logged on its own.
    if (end.code === 'ERR_PROXY_LOOP' && !this.loops.note()) return;
    this.options.log(entry);
  }

  /** Remembers an outbound connection's endpoints while it is open. */
  private track(out: net.Socket, destination: Destination): void {
    let key: string | undefined;
    const connected = () => {
      this.connecting.delete(out);
      // Refused as it connected (it met itself): no connection of the proxy's own to remember.
      if (out.destroyed) return;
      // The address dialled, where it is one (asking the socket would be one more system call per connection).
      const remote = net.isIP(destination.host) ? endpointKey(destination.host, destination.port) : endpointKey(out.remoteAddress, out.remotePort);
      key = `${endpointKey(out.localAddress, out.localPort)} -> ${remote}`;
      this.ownConnections.add(key);
    };
    // A socket through an upstream proxy arrives connected.
    if (out.connecting || out.remotePort === undefined) {
      this.connecting.set(out, endpointKey(destination.host, destination.port));
      out.once('connect', connected);
    } else connected();
    out.once('close', () => {
      this.connecting.delete(out);
      if (key !== undefined) this.ownConnections.delete(key);
    });
  }

  /**
   * Whether a new connection is one of this proxy's own outbound connections
   * come back (`destination`: where it was going, before any route hook): from
   * an outbound connection's local endpoint, to this proxy or (where the
   * destination is the connection's original one, not a fixed upstream every
   * connection shares) to where that connection is going. A looped connection
   * can be accepted before its outbound end has reported 'connect', so the
   * ones still connecting are checked too: their local endpoint exists from
   * the moment they dialled.
   */
  private isOwnConnection(inbound: net.Socket, destination: Destination): boolean {
    const from = endpointKey(inbound.remoteAddress, inbound.remotePort);
    // The proxy's end of the connection: its listening address unless that is a wildcard (asking the socket is a system call).
    const bound = this.listening && this.listening.address !== '0.0.0.0' && this.listening.address !== '::' ? this.listening : undefined;
    const targets = [bound ? endpointKey(bound.address, bound.port) : endpointKey(inbound.localAddress, inbound.localPort)];
    if (this.options.destination.kind !== 'upstream') targets.push(endpointKey(destination.host, destination.port));
    if (targets.some((target) => this.ownConnections.has(`${from} -> ${target}`))) return true;
    for (const [out, target] of this.connecting) {
      if (targets.includes(target) && endpointKey(out.localAddress, out.localPort) === from) return true;
    }
    return false;
  }

  /** Whether a destination is this proxy's own listening endpoint. */
  private isOwnListener(destination: Destination): boolean {
    return this.listening !== undefined && isListeningEndpoint(destination.host, destination.port, this.listening);
  }

  private async destinationOf(inbound: net.Socket): Promise<Destination> {
    const source = this.options.destination;
    if (source.kind === 'upstream') return source.upstream;
    const answer =
      source.kind === 'original'
        ? await getOriginalDestination(inbound, { contextOffset: source.contextOffset, decode: source.decode, layout: source.layout })
        : await source.resolve(inbound);
    // A context that names the connecting process (the `wfpr` layout's processId) says it first-hand.
    const processId = (answer as { processId?: unknown }).processId;
    if (this.processes && typeof processId === 'number' && processId > 0) this.contextPids.set(inbound, processId);
    return 'host' in answer ? answer : { host: answer.address, port: answer.port };
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
      // As on Linux, where netfilter has no record of such a connection, and as UDP says of a datagram without them.
      if (error.code === 'WSAEINVAL') throw notRedirected('the socket has no WFP redirect records (no callout redirected it to this process)', error);
      throw notRedirected(`this system's Winsock has no WFP redirect IOCTLs (${error.code})`, error);
    }
  }

  /**
   * Where a connection goes and the records it carries there: the redirect
   * records, the destination and the route hook's answer, refusing loops.
   * `refused` hears of a refused loop: false when it is counted rather than
   * logged on its own.
   */
  private async decide(inbound: net.Socket, entry: ConnectionLog, refused: (logged: boolean) => void): Promise<Decision> {
    const records = await this.recordsOf(inbound);
    entry.records = records?.length ?? 0;
    let destination = await this.destinationOf(inbound);
    entry.destination = formatEndpoint(destination.host, destination.port);
    if (this.isOwnConnection(inbound, destination)) {
      refused(this.loops.note());
      throw loopError(`${entry.client} is one of this proxy's own outbound connections`);
    }
    // The lookup runs while the sniff waits for the client's first bytes.
    const looking = this.processOf(inbound, destination);
    const rules = this.options.rules;
    const sniffing = this.options.sniff ?? (rules?.wantsDomain ? {} : undefined);
    const sniffed = sniffing ? await sniffStream(inbound, sniffing) : undefined;
    if (sniffed) Object.assign(entry, learnedFrom(sniffed));
    const process = await looking;
    if (process) entry.process = process;
    let via = this.via;
    if (rules) via = this.ruled(rules, destination, entry);
    if (this.options.route) {
      const request = { socket: inbound, destination, records, domain: entry.domain, learned: entry.learned, sniffed, process: entry.process, rule: entry.rule };
      ({ destination, via } = routed(await this.options.route(request), destination, via));
      entry.destination = formatEndpoint(destination.host, destination.port);
    }
    const next = via ?? destination;
    if (this.isOwnListener(next)) {
      refused(this.loops.note());
      throw loopError(`the ${via ? 'upstream' : 'destination'} ${formatEndpoint(next.host, next.port)} is this proxy itself`);
    }
    if (via) entry.via = via.display;
    return { records, destination, via, replay: sniffed?.bytes };
  }

  /**
   * With `processLookup`: the process whose socket is the client's end of
   * `inbound`. That socket points at the original destination when a redirect
   * brought it here (REDIRECT, TPROXY and WFP leave it so), at this proxy when
   * the client connected straight to it. A process id the redirect context
   * carried (`wfpr`) comes first. Never fails: unknown is undefined.
   */
  private async processOf(inbound: net.Socket, destination: Destination): Promise<ProcessInfo | undefined> {
    if (!this.processes || !(this.lookUpAlways || this.options.rules?.wantsProcess)) return undefined;
    if (inbound.remoteAddress === undefined || inbound.remotePort === undefined) return undefined;
    const fromContext = this.contextPids.get(inbound);
    if (fromContext !== undefined) {
      const named = await describeProcess(fromContext).catch(() => undefined);
      if (named) return named;
    }
    const local = { address: inbound.remoteAddress, port: inbound.remotePort };
    const remotes = [destination.host, inbound.localAddress].map((host, i) => ({ address: host ?? '', port: i === 0 ? destination.port : inbound.localPort ?? 0 }));
    for (const remote of remotes) {
      if (net.isIP(unmappedHost(remote.address)) === 0) continue; // a resolver's name: not what the client's socket holds
      try {
        const found = await this.processes.lookup({ protocol: 'tcp', local, remote });
        if (found) return found;
      } catch {
        // Only a malformed query rejects, and none is made here: unknown.
      }
    }
    return undefined;
  }

  /** The rules' word on a connection: the upstream to go through (undefined: direct); throws ERR_PROXY_BLOCKED for a block. */
  private ruled(rules: RuleSource, destination: Destination, entry: ConnectionLog): Upstream | undefined {
    const facts: MatchFacts = { protocol: 'tcp', address: destination.host, port: destination.port, domain: entry.domain, process: entry.process };
    const { label, action } = rules.match(facts);
    entry.rule = label;
    if (action.kind === 'block') throw coded(`blocked by ${label}`, BLOCKED);
    return action.kind === 'via' ? action.upstream : undefined;
  }

  /** Opens the outbound connection, carrying `records` (and the mark) where there are any. */
  private connectOut(destination: Destination, records: Buffer | undefined): net.Socket {
    const target = { host: destination.host, port: destination.port, allowHalfOpen: true, timeout: this.options.connectTimeout };
    // Nothing to set on the socket before it connects (no records, no mark): Node's own connect, a few system calls fewer.
    const out =
      records === undefined && this.options.mark === undefined
        ? net.connect(target)
        : connectRedirected({ ...target, redirectRecords: records, mark: this.options.mark });
    refuseSelfConnect(out, destination);
    this.open.add(out);
    this.track(out, destination);
    return out;
  }

  /**
   * A connection to `destination` through the upstream proxy `via`, connected
   * and past its handshake (connectTimeout bounds both); given up when the
   * client goes away meanwhile.
   */
  private async connectThrough(via: Upstream, destination: Destination, records: Buffer | undefined, inbound: net.Socket): Promise<net.Socket> {
    const gone = new AbortController();
    const abort = () => gone.abort();
    inbound.once('close', abort);
    try {
      // allowHalfOpen, as for a direct connection: the destination's FIN must not end the upload too (Node's default ends it).
      const options = { redirectRecords: records, mark: this.options.mark, handshakeTimeout: this.options.connectTimeout || undefined, signal: gone.signal, allowHalfOpen: true };
      const out = await connectVia(via, destination, options);
      this.open.add(out);
      this.track(out, via);
      return out;
    } finally {
      inbound.off('close', abort);
    }
  }

  /** Says once per reason that connections stay on streams (`reason`: a hand-over refused; undefined, nothing to say). */
  private sayFallback(reason: NativeRelay | string | undefined): void {
    const notice = typeof reason === 'string' ? fallbackNotice(this, reason) : undefined;
    if (notice) this.options.warn(notice);
  }

  /**
   * The timers of a relay: the connect timeout until the outbound side
   * connects, then the idle timeout on both sides, and once either side has
   * ended its half, the (shorter) half-close timeout.
   */
  private time(inbound: net.Socket, out: net.Socket, fail: (error: unknown) => void): void {
    const { idleTimeout, halfCloseTimeout } = this.options;
    const connectTimedOut = () => fail(coded('timed out', 'ETIMEDOUT'));
    const connected = () => {
      out.off('timeout', connectTimedOut);
      let code = 'ERR_IDLE_TIMEOUT';
      const expired = () => fail(coded(code === 'ERR_IDLE_TIMEOUT' ? 'idle' : 'half-closed and idle', code));
      out.setTimeout(idleTimeout);
      inbound.setTimeout(idleTimeout);
      out.on('timeout', expired);
      inbound.on('timeout', expired);
      const halfClosed = () => {
        if (halfCloseTimeout === 0 || code !== 'ERR_IDLE_TIMEOUT') return;
        code = 'ERR_HALF_CLOSE_TIMEOUT';
        const ms = idleTimeout === 0 ? halfCloseTimeout : Math.min(idleTimeout, halfCloseTimeout);
        out.setTimeout(ms);
        inbound.setTimeout(ms);
      };
      out.once('end', halfClosed);
      inbound.once('end', halfClosed);
    };
    // A socket through an upstream proxy arrives connected.
    if (!out.connecting) return connected();
    out.once('timeout', connectTimedOut);
    out.once('connect', connected);
  }

  private async relay(inbound: net.Socket): Promise<void> {
    const started = Date.now();
    const client = formatEndpoint(inbound.remoteAddress, inbound.remotePort);
    const entry: ConnectionLog = { id: ++this.nextId, client, destination: undefined, records: 0, bytesUp: 0, bytesDown: 0, durationMs: 0 };
    const carried: Carried = { outbound: undefined, native: undefined, handshakeBytes: 0 };
    this.open.add(inbound);
    const fail = (error: unknown) => {
      if (entry.error === undefined && OUT_OF_DESCRIPTORS.has(codeOf(error))) this.descriptors.note();
      entry.error ??= codeOf(error);
      // The native relay first: on Windows libuv's close of Node's handle may shut the shared socket's
      // sending half, or wait for Node's pending read, while the relay still has the socket.
      carried.native?.destroy();
      // A blocked connection is refused as a closed port would be: a reset, not an orderly end.
      if (entry.error === BLOCKED && !inbound.destroyed) inbound.resetAndDestroy();
      else inbound.destroy();
      carried.outbound?.destroy();
    };
    inbound.on('error', fail);
    this.clients.set(inbound, (error) => {
      // A native relay that had ended by itself reports its own end: the connection was not cut.
      if (inbound.destroyed || (carried.native !== undefined && !carried.native.destroy())) return false;
      fail(error);
      return true;
    });
    const inboundClosed = new Promise<void>((resolve) => inbound.once('close', () => resolve()));
    // A refused loop after the first in an interval is counted in the warning, not logged on its own.
    let unlogged = false;
    try {
      const decision = await this.decideInTime(inbound, entry, (logged) => (unlogged = !logged));
      this.options.logStart?.({ ...entry });
      await this.carry(inbound, inboundClosed, decision, carried, fail);
    } catch (error) {
      fail(error);
      await inboundClosed;
    } finally {
      const { outbound, native, handshakeBytes } = carried;
      const nativeBytes = native ? await native.ended : { bytesUp: 0, bytesDown: 0 };
      entry.bytesUp = (outbound?.bytesWritten ?? 0) - handshakeBytes + nativeBytes.bytesUp;
      entry.bytesDown = inbound.bytesWritten + nativeBytes.bytesDown;
      entry.durationMs = Date.now() - started;
      this.clients.delete(inbound);
      this.open.delete(inbound);
      if (outbound) this.open.delete(outbound);
      if (!unlogged) this.options.log(entry);
    }
  }

  /**
   * decide(), bounded by routeTimeout, and ended by the connection's close (a shutdown's cut) rather than left to
   * routeTimeout: a route hook may take that long. The close is listened for only meanwhile: an Error made at every
   * connection's end cost ~2% of its CPU.
   */
  private async decideInTime(inbound: net.Socket, entry: ConnectionLog, refused: (logged: boolean) => void): Promise<Decision> {
    let clientGone!: () => void;
    const gone = new Promise<never>((_, reject) => (clientGone = () => reject(coded('client went away', 'ECONNRESET'))));
    inbound.once('close', clientGone);
    const decision = await within(
      Promise.race([this.decide(inbound, entry, refused), gone]),
      this.options.routeTimeout,
      'ERR_PROXY_ROUTE_TIMEOUT',
      'deciding where the connection goes (redirect records, destination, route hook)',
    ).finally(() => inbound.off('close', clientGone));
    if (inbound.destroyed) throw coded('client went away', 'ECONNRESET');
    return decision;
  }

  /** Connects the decided outbound side and relays the pair until both have closed. */
  private async carry(inbound: net.Socket, inboundClosed: Promise<void>, decision: Decision, carried: Carried, fail: (error: unknown) => void): Promise<void> {
    const { records, destination, via, replay } = decision;
    const out = (carried.outbound = via ? await this.connectThrough(via, destination, records, inbound) : this.connectOut(destination, records));
    // The upstream's handshake is not the client's bytes: bytesUp counts from here.
    carried.handshakeBytes = out.bytesWritten;
    out.on('error', fail);
    // The client may have gone while an upstream's handshake ran.
    if (inbound.destroyed) throw coded('client went away', 'ECONNRESET');
    const outClosed = new Promise<void>((resolve) => out.once('close', () => resolve()));
    this.time(inbound, out, fail);
    await this.startRelay(inbound, inboundClosed, out, replay, carried);
    const native = carried.native;
    if (native) {
      // Either socket destroyed (a failure, a shutdown) ends the native relay; its end closes both.
      inbound.once('close', native.destroy);
      out.once('close', native.destroy);
      const end = await native.ended;
      if (end.code !== undefined) fail(coded(`relay: ${end.code}`, end.code));
      inbound.destroy();
      out.destroy();
    }
    await Promise.all([inboundClosed, outClosed]);
  }

  /**
   * Starts moving a pair's bytes: handed to the native relay once connected (nativeAfter 0) or once bulky, or piped
   * on streams. Resolves once the native relay has the pair (carried.native, set with no I/O or timer between, so
   * that a cut meanwhile ends it before Node's handles close), or at once while the pair stays on streams.
   */
  private async startRelay(inbound: net.Socket, inboundClosed: Promise<void>, out: net.Socket, replay: Buffer | undefined, carried: Carried): Promise<void> {
    const nativeNow = this.options.relay === 'native' && this.options.nativeAfter === 0;
    // A client that goes while the outbound side connects ends the wait (read(0): Node reads it, so a reset surfaces;
    // what it sent stays buffered for the hand-over), as the streams relay, reading it, sees at once.
    if (nativeNow) inbound.read(0);
    const ready = nativeNow && (await Promise.race([connectedOrClosed(out), inboundClosed.then(() => false)]));
    const handed = ready && !inbound.destroyed && !out.destroyed ? handOver(inbound, out, replay, this.options) : undefined;
    if (handed !== undefined && typeof handed !== 'string') return void (carried.native = handed);
    this.sayFallback(handed);
    if (out.destroyed) return;
    // Relay at once, not after 'connect': what the client sends meanwhile waits in
    // the outbound socket (pipe() keeps to its high-water mark), and the first bytes
    // go out as the connection completes instead of one event-loop turn later.
    // pipe() keeps to the slower side and, on one side's end, ends the other (half-close).
    // What the sniff read goes first, unchanged.
    if (replay?.length) inbound.unshift(replay);
    inbound.pipe(out);
    out.pipe(inbound);
    inbound.resume();
    if (this.options.relay !== 'native' || nativeNow) return;
    // nativeAfter: a connection that moves that much goes on natively; a short one never pays for the hand-over.
    const bulky = await handOverWhenBulky(inbound, out, this.options.nativeAfter, this.options);
    if (typeof bulky === 'string') this.sayFallback(bulky);
    else carried.native = bulky;
  }
}

/** Refuses an outbound connection that met itself (lib/self-connect.ts), before anything queued while connecting is written. */
function refuseSelfConnect(out: net.Socket, destination: Destination): void {
  out.prependOnceListener('connect', () => {
    if (connectedToItself(out, destination.port)) out.destroy(selfConnectError(destination.host, destination.port));
  });
}

/** Whether `out` connects (true, at once when it is already) or closes first (false). */
function connectedOrClosed(out: net.Socket): Promise<boolean> {
  if (!out.connecting && out.remotePort !== undefined) return Promise.resolve(true);
  if (out.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const connected = () => {
      out.off('close', closed);
      resolve(true);
    };
    const closed = () => {
      out.off('connect', connected);
      resolve(false);
    };
    out.once('connect', connected);
    out.once('close', closed);
  });
}
