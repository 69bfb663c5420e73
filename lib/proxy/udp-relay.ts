// The UDP half of the transparent proxy: each flow (a client endpoint and
// the destination its datagrams were going to) gets its own outbound socket,
// whose first datagram carries the flow's WFP redirect records (Windows), so
// WFP does not redirect the proxy's own datagrams again; replies go back to
// the client (Linux TPROXY: from the original destination's address). Flows
// end when idle, or oldest idle first when there are too many (overall, or
// from one source address).
//
// UDP has no handshake, so everything here is bounded against a peer that
// floods: a datagram that starts no flow is counted and reported at most once
// per interval per reason, and the relay's own datagrams coming back to it (a
// redirect rule that catches them) are refused as loops, not relayed again.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { invalidArgType, outOfRange } from '../errors';
import { originalDestinationFromContext, type OriginalDestinationOptions } from '../original-destination';
import { RedirectUdpSocket, type RedirectedRemoteInfo } from '../udp-socket';
import { unmapped } from '../sockaddr';
import { codeOf, formatEndpoint, isInterfaceAddress, isListeningEndpoint, withoutThrowing } from './endpoints';
import { RateLimitedReport, REPORT_INTERVAL_MS } from './rate-limited-report';
import type { Destination, RuleSource } from './tcp-proxy';
import { sniffQuicInitial } from '../sniff/quic';
import { checkUpstream } from './upstream-check';
import { AssociatedFlowSocket } from './udp-via';
import { UpstreamError } from '../upstream/errors';
import { parseUpstream, type Upstream } from '../upstream/url';
import { ProcessLookup, type ProcessInfo } from '../process';

/** Where a flow goes: a fixed upstream, or where its datagrams were going (TPROXY on Linux, the WFP context on Windows). */
export type UdpDestinationSource =
  | { kind: 'upstream'; upstream: Destination }
  | ({ kind: 'original' } & Pick<OriginalDestinationOptions, 'contextOffset' | 'decode' | 'layout'>);

export interface UdpRelayOptions {
  /** An IP address and port. */
  listen: Destination;
  destination: UdpDestinationSource;
  /** A flow with no datagram either way for this long, in ms, ends. Default 60000. */
  idleTimeout?: number | undefined;
  /** Flows at once; a new one beyond it ends the one idle longest. Default 1024. */
  maxFlows?: number | undefined;
  /**
   * Flows at once from one client address (any port); a new one beyond it
   * ends that address's flow idle longest, so that one host spraying source
   * ports cannot end everyone else's flows. Clients on this host share one
   * address: where they are all there is, raise it to `maxFlows`. Default: a
   * quarter of `maxFlows` (256).
   */
  maxFlowsPerSource?: number | undefined;
  /**
   * One call per ended flow; for datagrams that started no flow, the first
   * of each reason in an interval (the rest are counted in `warn`).
   */
  log?: ((entry: FlowLog) => void) | undefined;
  /** Linux: SO_MARK on every outbound socket (see connectRedirected's `mark`). */
  mark?: number | undefined;
  /** Conditions of the relay as a whole, as one line of text, at most one per kind every 10 s. */
  warn?: ((message: string) => void) | undefined;
  /** One call per flow as it opens (the CLI's --log-start). */
  logStart?: ((entry: FlowLog) => void) | undefined;
  /**
   * Send each flow through this SOCKS5 upstream (`socks5://` or `socks5h://`):
   * one UDP ASSOCIATE per flow, its records and mark on the association's
   * control connection; the flow ends when the association does.
   */
  via?: string | Upstream | undefined;
  /**
   * Look up the process behind each flow whose client is on this host
   * (lookupProcess), from its first datagram; the flow's log lines get it
   * (its start line waits for the lookup). Default off. Where a rule names a
   * process this happens without it, and a new flow waits for its lookup
   * (at most PROCESS_WAIT_MS) before it is decided.
   */
  processLookup?: boolean | undefined;
  /**
   * Rules (the CLI's --config), asked once per flow at its first datagram:
   * direct, through a SOCKS5 upstream (in place of `via`), or block (the
   * flow's datagrams are dropped; logged once per flow, at most one line per
   * rule every 10 s, the rest counted in `warn`).
   */
  rules?: RuleSource | undefined;
  /**
   * Read the server name of a QUIC v1 Initial in each flow's first datagram
   * (one decryption per new flow, none later), for the log and the rules.
   * Where a rule wants a domain this happens without it. Default off.
   */
  sniff?: boolean | undefined;
}

export type FlowEnd = 'idle' | 'evicted' | 'replaced' | 'shutdown' | 'error' | 'dropped' | 'blocked';

export interface FlowLog {
  id: number;
  protocol: 'udp';
  client: string;
  destination?: string;
  datagramsUp: number;
  bytesUp: number;
  datagramsDown: number;
  bytesDown: number;
  /** Size of the redirect records the flow's first outbound datagram carried. */
  records: number;
  /** With `processLookup`: the process behind the flow, where known. */
  process?: ProcessInfo;
  durationMs: number;
  /** Why it ended; 'dropped' is a datagram that started no flow (see `error`); 'blocked' a flow a rule blocked. */
  end: FlowEnd;
  error?: string;
  /** The server name of the QUIC Initial in the flow's first datagram, when sniffed. */
  domain?: string;
  /** 'quic', or 'none' when the first datagram was looked at and gave no name. */
  learned?: 'quic' | 'none';
  /** The SOCKS5 upstream the flow went through, without credentials. */
  via?: string;
  /** With `rules`: the rule that decided (its name, rules[N], or "default"). */
  rule?: string;
}

/** A new flow waiting for its process lookup (a rule names a process): its datagrams so far, in order. */
interface PendingFlow {
  key: string;
  /** The client's address, unmapped: what the per-source bound counts by. */
  source: string;
  /** The first datagram's: its records and context decide the flow. */
  rinfo: RedirectedRemoteInfo;
  destination: { address: string; port: number };
  blockKey: string;
  datagrams: Buffer[];
  bytes: number;
}

/** Longest a new flow waits for its process lookup when a rule names a process; unknown after it. */
export const PROCESS_WAIT_MS = 500;
/** Datagrams, and their bytes, one flow may queue while it waits for its process; more are dropped (ERR_PROXY_QUEUE_FULL). */
export const PENDING_DATAGRAMS = 16;
export const PENDING_BYTES = 64 * 1024;

/** What was decided of a new flow at its first datagram. */
interface FlowRoute {
  via: Upstream | undefined;
  domain: string | undefined;
  learned: 'quic' | 'none' | undefined;
  rule: string | undefined;
}

export interface UdpRelayStats {
  flows: number;
  /** Datagrams dropped: nobody redirected them, their redirect data could not be read, or they were the relay's own (a loop). */
  dropped: number;
  /** Of those, the relay's own datagrams that came back to it (ERR_PROXY_LOOP). */
  loops: number;
  /** Datagrams whose control data was malformed or cut short (the listening socket's count). */
  malformedControl: number;
}

interface Flow {
  id: number;
  key: string;
  /** The client's address, unmapped: what the per-source cap counts by. */
  source: string;
  client: { address: string; port: number };
  /** An IP address: replies are taken from it alone. */
  destination: { address: string; port: number };
  records: Buffer | undefined;
  outbound: RedirectUdpSocket | AssociatedFlowSocket;
  /** The outbound socket's local port, as `ownPorts` keys it, once bound. */
  ownPort: string | undefined;
  /**
   * The outbound socket was given the destination's own port on this host (a
   * closed port in the ephemeral range: nothing else holds it), so what it
   * sends comes back to itself, and is no answer.
   */
  sendsToItself: boolean;
  log: FlowLog;
  started: number;
  timer: NodeJS.Timeout;
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw outOfRange('ERR_OUT_OF_RANGE', `options.${name} must be a whole number of at least 1. Received ${String(value)}`);
  return value;
}


/** Whether `address` is one of this host's own (loopback included). */
function isLocalAddress(address: string): boolean {
  const plain = unmapped(address);
  if (plain === '::1' || (net.isIPv4(plain) && plain.startsWith('127.'))) return true;
  return isInterfaceAddress(plain);
}

/** What a warning adds to the first datagram dropped for a reason. */
const WHY_DROPPED: Record<string, string> = {
  ERR_PROXY_LOOP:
    'the relay\'s own datagrams came back to it: a redirect rule catches them. Exempt them (Linux: --mark N with "-m mark ! --mark N" on the TPROXY rule; Windows: the callout must honour the records)',
  ENOTFOUND: 'the upstream does not resolve',
  ERR_PROXY_QUEUE_FULL: `a new flow sent more than ${PENDING_DATAGRAMS} datagrams (or ${PENDING_BYTES / 1024} KiB) while its process was looked up (a rule names a process): the rest were dropped`,
  ERR_PROXY_PENDING_FULL: 'too many new flows were waiting for their process lookup at once (maxFlows overall, maxFlowsPerSource from one address): their datagrams were dropped',
};

export class UdpRelay {
  readonly socket: RedirectUdpSocket;
  private readonly options: Required<Omit<UdpRelayOptions, 'destination' | 'mark' | 'logStart' | 'via' | 'processLookup' | 'rules' | 'sniff'>> &
    Pick<UdpRelayOptions, 'destination' | 'mark' | 'logStart' | 'rules' | 'sniff'>;
  /** The SOCKS5 upstream every flow goes through, if any. */
  private readonly via: Upstream | undefined;
  /** With `processLookup`: the lookup, with its cache. */
  private readonly processes: ProcessLookup | undefined;
  /** processLookup: every flow's process, for the log, not only while a rule names one. */
  private readonly lookUpAlways: boolean;
  /** Oldest activity first: a flow moves to the end on each datagram. */
  private readonly flows = new Map<string, Flow>();
  /** The same flows by client address, each map oldest activity first: the per-source cap. */
  private readonly flowsOfSource = new Map<string, Map<string, Flow>>();
  /** Windows: a redirected flow's context comes with its first datagram only; later ones are known by their client. */
  private readonly flowOfClient = new Map<string, Flow>();
  /** New flows waiting for their process lookup, by key (oldest first; at most maxFlows, maxFlowsPerSource from one address). */
  private readonly pending = new Map<string, PendingFlow>();
  /** The same by client address: how many from each. */
  private readonly pendingOfSource = new Map<string, number>();
  /** Windows: the pending flow of a client, which its datagrams without a context join. */
  private readonly pendingOfClient = new Map<string, PendingFlow>();
  /** Set by shutdown: lookups that answer after it open nothing. */
  private closed = false;
  /** Flows a rule blocked, by key, with when a datagram of each was last dropped (oldest first; at most maxFlows). */
  private readonly blocked = new Map<string, number>();
  /** The local ports of the flows' outbound sockets, by family: a datagram from one of them is the relay's own, come back. */
  private readonly ownPorts = new Set<string>();
  /** Linux: each datagram names its original destination (TPROXY). */
  private readonly tproxy: boolean;
  /** Windows, original destinations: only a flow's first datagram names its destination (the WFP context). */
  private readonly byClient: boolean;
  private upstream: { address: string; port: number } | undefined;
  /** A lookup of an upstream that did not resolve at start-up, while one is in flight. */
  private resolving: Promise<void> | undefined;
  private nextId = 0;
  private dropped = 0;
  private loops = 0;
  /** Per reason a datagram is dropped or a flow evicted: the first in an interval is logged, the rest counted. */
  private readonly reports = new Map<string, RateLimitedReport>();

  constructor(options: UdpRelayOptions) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    const { via, processLookup, ...rest } = options;
    // Rules may name a process (now or after a reload): the lookup is there, used while they do.
    this.processes = processLookup || options.rules ? new ProcessLookup({ timeoutMs: PROCESS_WAIT_MS }) : undefined;
    this.lookUpAlways = processLookup === true;
    this.via = via === undefined ? undefined : parseUpstream(via);
    if (options.rules !== undefined && (options.rules === null || typeof options.rules.match !== 'function')) throw invalidArgType('options.rules', 'a RuleSet or RuleMatcher', options.rules);
    if (this.via?.protocol === 'http') {
      throw new UpstreamError(`UDP needs a SOCKS5 upstream (UDP ASSOCIATE); ${this.via.display} is HTTP CONNECT, which carries no UDP`, { code: 'ERR_UPSTREAM_URL_INVALID' });
    }
    this.options = {
      ...rest,
      idleTimeout: positive(options.idleTimeout ?? 60_000, 'idleTimeout'),
      maxFlows: positive(options.maxFlows ?? 1024, 'maxFlows'),
      maxFlowsPerSource: positive(options.maxFlowsPerSource ?? Math.max(1, Math.floor((options.maxFlows ?? 1024) / 4)), 'maxFlowsPerSource'),
      log: options.log ?? (() => {}),
      warn: options.warn ?? (() => {}),
    };
    for (const name of ['log', 'warn', 'logStart'] as const) {
      if (this.options[name] !== undefined && typeof this.options[name] !== 'function') throw invalidArgType(`options.${name}`, 'a function', this.options[name]);
    }
    this.options.warn = withoutThrowing(this.options.warn);
    const family = net.isIP(options.listen?.host ?? '');
    if (family === 0) throw invalidArgType('options.listen.host', 'an IP address', options.listen?.host);
    // Linux learns the original destination from TPROXY, which needs a transparent socket.
    this.tproxy = options.destination.kind === 'original' && process.platform !== 'win32';
    this.byClient = options.destination.kind === 'original' && process.platform === 'win32';
    this.socket = new RedirectUdpSocket({ type: family === 6 ? 'udp6' : 'udp4', transparent: this.tproxy });
    this.socket.on('message', (data, rinfo) => {
      try {
        this.inbound(data, rinfo);
      } catch (error) {
        // No outbound socket (EMFILE, a mark refused, ...): this datagram alone is lost.
        this.drop(rinfo, codeOf(error));
      }
    });
    // A failed receive is the OS's (e.g. out of buffers): counted and reported, never fatal.
    this.socket.on('error', (error) => this.report(`receive:${codeOf(error)}`, `receiving failed: ${codeOf(error)}`));
  }

  /** Binds and starts relaying; `port` overrides options.listen.port (the CLI passes the port TCP got). */
  async listen(port = this.options.listen.port): Promise<net.AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(port, this.options.listen.host, () => {
        this.socket.off('error', reject);
        resolve();
      });
    });
    const listening = this.socket.address();
    if (this.via) {
      try {
        await checkUpstream(this.via, listening, this.options.warn);
      } catch (error) {
        await new Promise<void>((resolve) => this.socket.close(resolve));
        throw error;
      }
    }
    const source = this.options.destination;
    if (source.kind === 'upstream') {
      try {
        const [address] = (await checkUpstream(source.upstream, listening, this.options.warn)) ?? [];
        if (address !== undefined) this.upstream = { address, port: source.upstream.port };
      } catch (error) {
        await new Promise<void>((resolve) => this.socket.close(resolve));
        throw error;
      }
      if (listening.address === '0.0.0.0' || listening.address === '::') {
        this.options.warn(
          `relaying UDP from every address to ${formatEndpoint(source.upstream.host, source.upstream.port)}: UDP has no handshake, so anyone who can reach ` +
            `port ${listening.port} can send through it with any source address, and replies go to that address. Listen on one address, or firewall the port`,
        );
      }
    }
    return listening;
  }

  get stats(): UdpRelayStats {
    return { flows: this.flows.size, dropped: this.dropped, loops: this.loops, malformedControl: this.socket.stats.malformedControl };
  }

  /** Stops receiving and ends every flow; resolves to how many there were. */
  async shutdown(): Promise<number> {
    const open = this.flows.size;
    this.closed = true;
    // Flows still waiting for their process: their datagrams go nowhere, and their lookups open nothing.
    for (const waiting of this.pending.values()) this.dropped += waiting.datagrams.length;
    this.pending.clear();
    this.pendingOfSource.clear();
    this.pendingOfClient.clear();
    for (const flow of [...this.flows.values()]) this.end(flow, 'shutdown');
    for (const report of this.reports.values()) report.stop();
    await new Promise<void>((resolve) => this.socket.close(resolve));
    return open;
  }

  /**
   * Notes one occurrence of `reason`; returns whether it is the first in its
   * interval (to be logged on its own). The rest are counted, and said in
   * one `warn` line per interval.
   */
  private report(reason: string, summary: string, first?: string): boolean {
    let report = this.reports.get(reason);
    if (!report) {
      report = new RateLimitedReport((count, isFirst) => {
        if (isFirst) {
          if (first !== undefined) this.options.warn(first);
        } else this.options.warn(`${summary}: ${count} more in the last ${REPORT_INTERVAL_MS / 1000} s`);
      });
      this.reports.set(reason, report);
    }
    return report.note();
  }

  private drop(rinfo: RedirectedRemoteInfo, error: string): void {
    ++this.dropped;
    const why = WHY_DROPPED[error];
    if (!this.report(`drop:${error}`, `dropped datagrams (${error})`, why && `dropped a datagram (${error}): ${why}`)) return;
    this.options.log({
      id: ++this.nextId, protocol: 'udp', client: formatEndpoint(rinfo.address, rinfo.port), datagramsUp: 1, bytesUp: rinfo.size,
      datagramsDown: 0, bytesDown: 0, records: rinfo.redirectRecords?.length ?? 0, durationMs: 0, end: 'dropped', error,
    });
  }

  /** Whether a datagram came from one of the flows' own outbound sockets: the relay's own traffic, redirected back to it. */
  private isOwnDatagram(rinfo: RedirectedRemoteInfo): boolean {
    return this.ownPorts.has(`${rinfo.family === 'IPv6' ? 6 : 4} ${rinfo.port}`) && isLocalAddress(rinfo.address);
  }

  /** The upstream's address; when it did not resolve at start-up, one lookup at a time is tried again. */
  private upstreamAddress(source: { upstream: Destination }): { address: string; port: number } | string {
    if (this.upstream) return this.upstream;
    this.resolving ??= lookup(source.upstream.host)
      .then(({ address }) => void (this.upstream = { address, port: source.upstream.port }))
      .catch(() => {})
      .finally(() => setTimeout(() => (this.resolving = undefined), 1000).unref());
    return 'ENOTFOUND';
  }

  /** Where a datagram goes, or the code it is dropped with. */
  private destinationOf(rinfo: RedirectedRemoteInfo): { address: string; port: number } | string {
    const source = this.options.destination;
    if (source.kind === 'upstream') return this.upstreamAddress(source);
    if (this.tproxy) {
      const original = rinfo.originalDestination;
      // A datagram sent to the proxy itself has its own address as "original".
      if (!original || this.isOwnEndpoint(original.address, original.port)) return 'ERR_NOT_REDIRECTED';
      return { address: unmapped(original.address), port: original.port };
    }
    if (!rinfo.redirectContext) return 'ERR_NOT_REDIRECTED';
    try {
      const { address, port } = originalDestinationFromContext(rinfo.redirectContext, source);
      return this.isOwnEndpoint(address, port) ? 'ERR_PROXY_LOOP' : { address, port };
    } catch (error) {
      return codeOf(error);
    }
  }

  /** The listening socket's own address and port: where a datagram nobody redirected was going. */
  private isOwnEndpoint(address: string, port: number): boolean {
    return isListeningEndpoint(address, port, this.socket.address());
  }

  private inbound(data: Buffer, rinfo: RedirectedRemoteInfo): void {
    if (this.ownPorts.size > 0 && this.isOwnDatagram(rinfo)) {
      ++this.loops;
      return this.drop(rinfo, 'ERR_PROXY_LOOP');
    }
    const client = formatEndpoint(rinfo.address, rinfo.port);
    let flow: Flow | undefined;
    if (this.byClient && !rinfo.redirectContext) {
      // A client's flow still being decided takes its datagrams, in order.
      const waiting = this.pendingOfClient.get(client);
      if (waiting) return this.enqueue(waiting, data, rinfo);
      flow = this.flowOfClient.get(client);
      if (!flow) {
        // A blocked flow's later datagrams: known by their client, as an open flow's are.
        if (this.isBlocked(client)) return;
        return this.drop(rinfo, 'ERR_NOT_REDIRECTED');
      }
    } else {
      const destination = this.destinationOf(rinfo);
      if (typeof destination === 'string') return this.drop(rinfo, destination);
      const key = `${client} ${formatEndpoint(destination.address, destination.port)}`;
      flow = this.flows.get(key);
      if (!flow) {
        const waiting = this.pending.get(key);
        if (waiting) return this.enqueue(waiting, data, rinfo);
        // Windows: a datagram with a context is a new redirect, decided afresh; a blocked one is remembered by its client.
        if (!this.byClient && this.isBlocked(key)) return;
        const blockKey = this.byClient ? client : key;
        // A rule names a process: the flow is decided once its process is known (or the lookup gave up).
        if (this.processes && this.options.rules?.wantsProcess) return this.await(key, data, rinfo, destination, blockKey);
        const route = this.routeOf(data, rinfo, destination, blockKey);
        if (route === undefined) return;
        flow = this.open(key, rinfo, destination, route);
      }
    }
    this.forward(flow, data);
  }

  /** Sends a client's datagram on through its flow. */
  private forward(flow: Flow, data: Buffer): void {
    this.touch(flow);
    const first = flow.log.datagramsUp === 0;
    flow.log.datagramsUp += 1;
    flow.log.bytesUp += data.length;
    // The records go with the flow's first datagram only, as WFP gave them.
    const done = (error: Error | null) => {
      if (error) this.end(flow!, 'error', codeOf(error));
    };
    // Through an upstream, the records went with the association's control connection.
    if (flow.outbound instanceof AssociatedFlowSocket) return flow.outbound.send(data, flow.destination.port, flow.destination.address, done);
    const options = first && flow.records ? { redirectRecords: flow.records } : {};
    flow.outbound.send(data, flow.destination.port, flow.destination.address, options, done);
  }

  /**
   * Starts deciding a new flow whose rules want its process: its datagrams
   * queue (bounded) until the lookup answers (at most PROCESS_WAIT_MS), then
   * the rules decide and the queue goes out in order, or is dropped.
   */
  private await(key: string, data: Buffer, rinfo: RedirectedRemoteInfo, destination: { address: string; port: number }, blockKey: string): void {
    const source = unmapped(rinfo.address);
    const ofSource = this.pendingOfSource.get(source) ?? 0;
    if (this.pending.size >= this.options.maxFlows || ofSource >= this.options.maxFlowsPerSource) return this.drop(rinfo, 'ERR_PROXY_PENDING_FULL');
    const waiting: PendingFlow = { key, source, rinfo, destination, blockKey, datagrams: [data], bytes: data.length };
    this.pending.set(key, waiting);
    this.pendingOfSource.set(source, ofSource + 1);
    const client = formatEndpoint(rinfo.address, rinfo.port);
    if (this.byClient) this.pendingOfClient.set(client, waiting);
    void this.lookUp(rinfo, destination).then((process) => this.decided(waiting, process));
  }

  /** Queues a datagram of a flow being decided; beyond its bound, dropped (counted, reported). */
  private enqueue(waiting: PendingFlow, data: Buffer, rinfo: RedirectedRemoteInfo): void {
    if (waiting.datagrams.length >= PENDING_DATAGRAMS || waiting.bytes + data.length > PENDING_BYTES) return this.drop(rinfo, 'ERR_PROXY_QUEUE_FULL');
    waiting.datagrams.push(data);
    waiting.bytes += data.length;
  }

  /** A pending flow's process is known (or unknown for good): the rules decide, and its queue goes out in order. */
  private decided(waiting: PendingFlow, process: ProcessInfo | undefined): void {
    if (this.closed || this.pending.get(waiting.key) !== waiting) return; // shut down meanwhile
    this.pending.delete(waiting.key);
    const left = (this.pendingOfSource.get(waiting.source) ?? 1) - 1;
    if (left > 0) this.pendingOfSource.set(waiting.source, left);
    else this.pendingOfSource.delete(waiting.source);
    const client = formatEndpoint(waiting.rinfo.address, waiting.rinfo.port);
    if (this.pendingOfClient.get(client) === waiting) this.pendingOfClient.delete(client);
    const [first, ...rest] = waiting.datagrams;
    let flow: Flow;
    try {
      const route = this.routeOf(first!, waiting.rinfo, waiting.destination, waiting.blockKey, process);
      if (route === undefined) {
        this.dropped += rest.length; // the first was counted as the block's
        return;
      }
      flow = this.open(waiting.key, waiting.rinfo, waiting.destination, route, process);
    } catch (error) {
      // No outbound socket (EMFILE, a mark refused, ...): this flow's datagrams are lost.
      this.dropped += rest.length;
      return this.drop(waiting.rinfo, codeOf(error));
    }
    try {
      for (const data of waiting.datagrams) this.forward(flow, data);
    } catch (error) {
      this.end(flow, 'error', codeOf(error)); // a send that threw: the flow cannot go on
    }
  }

  /** The process that sent a flow's first datagram; unknown (undefined) when it cannot be told, never an error. */
  private lookUp(rinfo: RedirectedRemoteInfo, destination: { address: string; port: number }): Promise<ProcessInfo | undefined> {
    if (!this.processes) return Promise.resolve(undefined);
    const listening = this.socket.address();
    const direct = this.options.destination.kind === 'upstream';
    const wildcard = listening.address === '0.0.0.0' || listening.address === '::';
    // An unconnected client socket answers for any peer; a relay on a wildcard address does not know which of its addresses was used.
    const remote = !direct ? destination : wildcard ? undefined : { address: listening.address, port: listening.port };
    return this.processes.lookup({ protocol: 'udp', local: { address: rinfo.address, port: rinfo.port }, remote }).catch(() => undefined);
  }

  /** Whether `key` is a flow a rule blocked that is still live: its datagram is dropped (counted, not logged again). */
  private isBlocked(key: string): boolean {
    const last = this.blocked.get(key);
    if (last === undefined) return false;
    this.blocked.delete(key);
    // Idle past the flow timeout: a new flow, decided again (the rules may have been reloaded).
    if (Date.now() - last > this.options.idleTimeout) return false;
    this.blocked.set(key, Date.now());
    ++this.dropped;
    return true;
  }

  /**
   * A new flow's route: its QUIC name (sniffed from this first datagram only,
   * when the rules or `sniff` want one) and the rules' word. Undefined when a
   * rule blocks it: remembered, logged (rate-limited) and dropped.
   * `process`: the process behind the flow, where it is known. `blockKey`:
   * what a blocked flow is remembered by (its key; Windows: its client).
   */
  private routeOf(data: Buffer, rinfo: RedirectedRemoteInfo, destination: { address: string; port: number }, blockKey: string, process?: ProcessInfo): FlowRoute | undefined {
    const rules = this.options.rules;
    let domain: string | undefined;
    let learned: FlowRoute['learned'];
    if (this.options.sniff || rules?.wantsDomain) {
      const sniffed = sniffQuicInitial(data);
      domain = sniffed.kind === 'found' ? sniffed.name : undefined;
      learned = domain === undefined ? 'none' : 'quic';
    }
    if (!rules) return { via: this.via, domain, learned, rule: undefined };
    const { label, action } = rules.match({ protocol: 'udp', address: destination.address, port: destination.port, domain, process });
    this.blocked.delete(blockKey);
    if (action.kind !== 'block') return { via: action.kind === 'via' ? action.upstream : undefined, domain, learned, rule: label };
    ++this.dropped;
    // Windows: the client's earlier flow must not take the datagrams of this redirect (they come without a context).
    const previous = this.byClient ? this.flowOfClient.get(blockKey) : undefined;
    if (previous) this.end(previous, 'replaced');
    if (this.blocked.size >= this.options.maxFlows) this.blocked.delete(this.blocked.keys().next().value!);
    this.blocked.set(blockKey, Date.now());
    if (this.report(`block:${label}`, `UDP flows blocked by ${label}`)) {
      this.options.log({
        id: ++this.nextId, protocol: 'udp', client: formatEndpoint(rinfo.address, rinfo.port), destination: formatEndpoint(destination.address, destination.port),
        datagramsUp: 1, bytesUp: data.length, datagramsDown: 0, bytesDown: 0, records: rinfo.redirectRecords?.length ?? 0, durationMs: 0, end: 'blocked',
        error: 'ERR_PROXY_BLOCKED', ...(domain === undefined ? {} : { domain }), ...(learned === undefined ? {} : { learned }), ...(process ? { process } : {}), rule: label,
      });
    }
    return undefined;
  }

  private open(key: string, rinfo: RedirectedRemoteInfo, destination: { address: string; port: number }, route: FlowRoute, process?: ProcessInfo): Flow {
    this.makeRoom(unmapped(rinfo.address));
    const client = formatEndpoint(rinfo.address, rinfo.port);
    // A new redirect from a client whose later datagrams are known by the client alone replaces its flow.
    const previous = this.byClient ? this.flowOfClient.get(client) : undefined;
    if (previous) this.end(previous, 'replaced');
    const id = ++this.nextId;
    const records = rinfo.redirectRecords;
    const via = route.via;
    const outbound = via
      ? new AssociatedFlowSocket(via, { redirectRecords: records, mark: this.options.mark, handshakeTimeout: undefined })
      : new RedirectUdpSocket({ type: net.isIPv6(destination.address) ? 'udp6' : 'udp4', mark: this.options.mark });
    // The listening socket keeps the process alive; a flow, like its idle timer, does not.
    if (outbound instanceof RedirectUdpSocket) outbound.unref();
    const log: FlowLog = {
      id, protocol: 'udp', client, destination: formatEndpoint(destination.address, destination.port),
      datagramsUp: 0, bytesUp: 0, datagramsDown: 0, bytesDown: 0, records: records?.length ?? 0, durationMs: 0, end: 'idle',
      ...(route.domain === undefined ? {} : { domain: route.domain }), ...(route.learned === undefined ? {} : { learned: route.learned }),
      ...(via ? { via: via.display } : {}), ...(route.rule === undefined ? {} : { rule: route.rule }), ...(process ? { process } : {}),
    };
    const flow: Flow = {
      id, key, source: unmapped(rinfo.address), client: { address: rinfo.address, port: rinfo.port }, destination, records, outbound, ownPort: undefined, sendsToItself: false, log,
      started: Date.now(), timer: setTimeout(() => this.end(flow, 'idle'), this.options.idleTimeout).unref(),
    };
    outbound.on('message', (reply: Buffer, from: { address: string; port: number }) => {
      if (from.port !== destination.port || unmapped(from.address) !== destination.address) return; // not the destination's
      if (flow.sendsToItself) return; // its own datagram: the client would read its own bytes as the answer
      this.reply(flow, reply);
    });
    outbound.on('error', (error: Error) => this.end(flow, 'error', codeOf(error)));
    // Looked up before the decision (a rule named a process): known already.
    if (this.processes && this.options.rules?.wantsProcess) this.options.logStart?.({ ...flow.log });
    else this.identify(flow, rinfo);
    this.flows.set(key, flow);
    this.sourceFlows(flow.source).set(key, flow);
    if (this.byClient) this.flowOfClient.set(client, flow);
    if (outbound instanceof RedirectUdpSocket) this.bindOwn(flow, outbound);
    return flow;
  }

  /**
   * With `processLookup`: the process whose socket sent the flow's first
   * datagram (it points at the original destination, or at this relay when
   * the client sent here directly), into the flow's log; the start line
   * follows the lookup.
   */
  private identify(flow: Flow, rinfo: RedirectedRemoteInfo): void {
    if (!this.lookUpAlways) return void this.options.logStart?.({ ...flow.log });
    void this.lookUp(rinfo, flow.destination).then((found) => {
      if (found) flow.log.process = found;
      this.options.logStart?.({ ...flow.log });
    });
  }

  /** Binds a flow's own socket now, so that its port is known before its first datagram can come back. */
  private bindOwn(flow: Flow, outbound: RedirectUdpSocket): void {
    outbound.bind();
    try {
      const { port } = outbound.address();
      flow.ownPort = `${net.isIPv6(flow.destination.address) ? 6 : 4} ${port}`;
      this.ownPorts.add(flow.ownPort);
      flow.sendsToItself = port === flow.destination.port && isLocalAddress(flow.destination.address);
    } catch {
      // Not bound: its 'error' ends the flow.
    }
  }

  /** Ends the flow idle longest of `source` when it is at its cap, or of all when the relay is. */
  private makeRoom(source: string): void {
    const ofSource = this.flowsOfSource.get(source);
    let oldest: Flow | undefined;
    if (ofSource && ofSource.size >= this.options.maxFlowsPerSource) oldest = ofSource.values().next().value;
    else if (this.flows.size >= this.options.maxFlows) oldest = this.flows.values().next().value;
    if (!oldest) return;
    if (oldest.source === source && ofSource !== undefined && ofSource.size >= this.options.maxFlowsPerSource) {
      const cap = `${this.options.maxFlowsPerSource} flows from one address (maxFlowsPerSource)`;
      this.report('evict:source', `flows ended at the cap of ${cap}`, `${source} reached the cap of ${cap}: its flow idle longest ends for each new one`);
    } else {
      const cap = `${this.options.maxFlows} flows (maxFlows)`;
      this.report('evict', `flows ended at the cap of ${cap}`, `the relay reached its cap of ${cap}: the flow idle longest ends for each new one`);
    }
    this.end(oldest, 'evicted');
  }

  private sourceFlows(source: string): Map<string, Flow> {
    let flows = this.flowsOfSource.get(source);
    if (!flows) this.flowsOfSource.set(source, (flows = new Map()));
    return flows;
  }

  /** Sends a reply from the flow's destination back to its client. */
  private reply(flow: Flow, reply: Buffer): void {
    this.touch(flow);
    flow.log.datagramsDown += 1;
    flow.log.bytesDown += reply.length;
    // TPROXY: the client expects the reply from where it sent its datagram.
    const options = this.tproxy ? { from: flow.destination } : {};
    this.socket.send(reply, flow.client.port, flow.client.address, options, (error) => {
      if (!error) return;
      const code = codeOf(error);
      if (this.tproxy && code === 'EADDRINUSE') {
        this.report(
          'reply:EADDRINUSE',
          'replies that could not be sent from their original destination (EADDRINUSE)',
          `a reply cannot be sent from ${formatEndpoint(flow.destination.address, flow.destination.port)}: a socket on this host holds that address and port ` +
            '(EADDRINUSE), so TPROXY sent this host\'s own server\'s traffic to the relay. Keep the TPROXY rule off destinations on this host (e.g. "-m addrtype ! --dst-type LOCAL")',
        );
      }
      this.end(flow, 'error', code);
    });
  }

  private touch(flow: Flow): void {
    flow.timer.refresh();
    this.flows.delete(flow.key);
    this.flows.set(flow.key, flow);
    const ofSource = this.flowsOfSource.get(flow.source);
    ofSource?.delete(flow.key);
    ofSource?.set(flow.key, flow);
  }

  private end(flow: Flow, why: FlowEnd, error?: string): void {
    if (this.flows.get(flow.key) !== flow) return; // already ended
    this.flows.delete(flow.key);
    const ofSource = this.flowsOfSource.get(flow.source);
    ofSource?.delete(flow.key);
    if (ofSource?.size === 0) this.flowsOfSource.delete(flow.source);
    if (this.flowOfClient.get(flow.log.client) === flow) this.flowOfClient.delete(flow.log.client);
    if (flow.ownPort !== undefined) this.ownPorts.delete(flow.ownPort);
    clearTimeout(flow.timer);
    flow.outbound.close();
    flow.log.end = why;
    if (error !== undefined) flow.log.error = error;
    flow.log.durationMs = Date.now() - flow.started;
    this.options.log(flow.log);
  }
}
