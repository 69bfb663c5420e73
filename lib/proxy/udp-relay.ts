// The UDP half of the transparent proxy: each flow (a client endpoint and
// the destination its datagrams were going to) gets its own outbound socket,
// whose first datagram carries the flow's WFP redirect records (Windows), so
// WFP does not redirect the proxy's own datagrams again; replies go back to
// the client (Linux TPROXY: from the original destination's address). Flows
// end when idle, or oldest idle first when there are too many.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { invalidArgType, outOfRange } from '../errors';
import { originalDestinationFromContext, type OriginalDestinationOptions } from '../original-destination';
import { RedirectUdpSocket, type RedirectedRemoteInfo } from '../udp-socket';
import { isListeningEndpoint, unmapped } from './endpoints';
import { type Destination, formatEndpoint } from './tcp-proxy';

/** Where a flow goes: a fixed upstream, or where its datagrams were going (TPROXY on Linux, the WFP context on Windows). */
export type UdpDestinationSource =
  | { kind: 'upstream'; upstream: Destination }
  | ({ kind: 'original' } & Pick<OriginalDestinationOptions, 'contextOffset' | 'decode'>);

export interface UdpRelayOptions {
  /** An IP address and port. */
  listen: Destination;
  destination: UdpDestinationSource;
  /** A flow with no datagram either way for this long, in ms, ends. Default 60000. */
  idleTimeout?: number;
  /** Flows at once; a new one beyond it ends the one idle longest. Default 1024. */
  maxFlows?: number;
  /** One call per ended flow, and per dropped datagram. */
  log?: (entry: FlowLog) => void;
  /** Linux: SO_MARK on every outbound socket (see connectRedirected's `mark`). */
  mark?: number;
}

export type FlowEnd = 'idle' | 'evicted' | 'replaced' | 'shutdown' | 'error' | 'dropped';

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
  durationMs: number;
  /** Why it ended; 'dropped' is a datagram that started no flow (see `error`). */
  end: FlowEnd;
  error?: string;
}

export interface UdpRelayStats {
  flows: number;
  /** Datagrams dropped because nobody redirected them, or their redirect data could not be read. */
  dropped: number;
  /** Datagrams whose control data was malformed or cut short (the listening socket's count). */
  malformedControl: number;
}

interface Flow {
  id: number;
  key: string;
  client: { address: string; port: number };
  /** An IP address: replies are taken from it alone. */
  destination: { address: string; port: number };
  records: Buffer | undefined;
  outbound: RedirectUdpSocket;
  log: FlowLog;
  started: number;
  timer: NodeJS.Timeout;
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw outOfRange('ERR_OUT_OF_RANGE', `options.${name} must be a whole number of at least 1. Received ${String(value)}`);
  return value;
}

const errorCode = (error: unknown) => String((error as { code?: unknown }).code ?? (error as Error).message ?? error);

export class UdpRelay {
  readonly socket: RedirectUdpSocket;
  private readonly options: Required<Omit<UdpRelayOptions, 'destination' | 'mark'>> & Pick<UdpRelayOptions, 'destination' | 'mark'>;
  /** Oldest activity first: a flow moves to the end on each datagram. */
  private readonly flows = new Map<string, Flow>();
  /** Windows: a redirected flow's context comes with its first datagram only; later ones are known by their client. */
  private readonly flowOfClient = new Map<string, Flow>();
  /** Linux: each datagram names its original destination (TPROXY). */
  private readonly tproxy: boolean;
  /** Windows, original destinations: only a flow's first datagram names its destination (the WFP context). */
  private readonly byClient: boolean;
  private upstream: { address: string; port: number } | undefined;
  private nextId = 0;
  private dropped = 0;

  constructor(options: UdpRelayOptions) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    this.options = {
      ...options,
      idleTimeout: positive(options.idleTimeout ?? 60_000, 'idleTimeout'),
      maxFlows: positive(options.maxFlows ?? 1024, 'maxFlows'),
      log: options.log ?? (() => {}),
    };
    if (typeof this.options.log !== 'function') throw invalidArgType('options.log', 'a function', this.options.log);
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
        this.drop(rinfo, errorCode(error));
      }
    });
    // A failed receive is the OS's (e.g. out of buffers): counted, never fatal.
    this.socket.on('error', () => ++this.dropped);
  }

  /** Binds and starts relaying; `port` overrides options.listen.port (the CLI passes the port TCP got). */
  async listen(port = this.options.listen.port): Promise<net.AddressInfo> {
    const source = this.options.destination;
    if (source.kind === 'upstream') {
      const { address } = await lookup(source.upstream.host);
      this.upstream = { address, port: source.upstream.port };
    }
    await new Promise<void>((resolve) => this.socket.bind(port, this.options.listen.host, resolve));
    return this.socket.address();
  }

  get stats(): UdpRelayStats {
    return { flows: this.flows.size, dropped: this.dropped, malformedControl: this.socket.stats.malformedControl };
  }

  /** Stops receiving and ends every flow; resolves to how many there were. */
  async shutdown(): Promise<number> {
    const open = this.flows.size;
    for (const flow of [...this.flows.values()]) this.end(flow, 'shutdown');
    await new Promise<void>((resolve) => this.socket.close(resolve));
    return open;
  }

  private drop(rinfo: RedirectedRemoteInfo, error: string): void {
    ++this.dropped;
    this.options.log({
      id: ++this.nextId, protocol: 'udp', client: formatEndpoint(rinfo.address, rinfo.port), datagramsUp: 1, bytesUp: rinfo.size,
      datagramsDown: 0, bytesDown: 0, records: rinfo.redirectRecords?.length ?? 0, durationMs: 0, end: 'dropped', error,
    });
  }

  /** Where a datagram goes, or the code it is dropped with. */
  private destinationOf(rinfo: RedirectedRemoteInfo): { address: string; port: number } | string {
    const source = this.options.destination;
    if (source.kind === 'upstream') return this.upstream!;
    if (this.tproxy) {
      const original = rinfo.originalDestination;
      // A datagram sent to the proxy itself has its own address as "original".
      if (!original || this.isOwnEndpoint(original.address, original.port)) return 'ERR_NOT_REDIRECTED';
      return { address: unmapped(original.address), port: original.port };
    }
    if (!rinfo.redirectContext) return 'ERR_NOT_REDIRECTED';
    try {
      const { address, port } = originalDestinationFromContext(rinfo.redirectContext, source);
      return { address, port };
    } catch (error) {
      return errorCode(error);
    }
  }

  /** The listening socket's own address and port: where a datagram nobody redirected was going. */
  private isOwnEndpoint(address: string, port: number): boolean {
    return isListeningEndpoint(address, port, this.socket.address());
  }

  private inbound(data: Buffer, rinfo: RedirectedRemoteInfo): void {
    const client = formatEndpoint(rinfo.address, rinfo.port);
    let flow: Flow | undefined;
    if (this.byClient && !rinfo.redirectContext) {
      flow = this.flowOfClient.get(client);
      if (!flow) return this.drop(rinfo, 'ERR_NOT_REDIRECTED');
    } else {
      const destination = this.destinationOf(rinfo);
      if (typeof destination === 'string') return this.drop(rinfo, destination);
      const key = `${client} ${formatEndpoint(destination.address, destination.port)}`;
      flow = this.flows.get(key);
      if (!flow) flow = this.open(key, rinfo, destination);
    }
    this.touch(flow);
    const first = flow.log.datagramsUp === 0;
    flow.log.datagramsUp += 1;
    flow.log.bytesUp += data.length;
    // The records go with the flow's first datagram only, as WFP gave them.
    const options = first && flow.records ? { redirectRecords: flow.records } : {};
    flow.outbound.send(data, flow.destination.port, flow.destination.address, options, (error) => {
      if (error) this.end(flow!, 'error', errorCode(error));
    });
  }

  private open(key: string, rinfo: RedirectedRemoteInfo, destination: { address: string; port: number }): Flow {
    if (this.flows.size >= this.options.maxFlows) this.end(this.flows.values().next().value!, 'evicted');
    const client = formatEndpoint(rinfo.address, rinfo.port);
    // A new redirect from a client whose later datagrams are known by the client alone replaces its flow.
    const previous = this.byClient ? this.flowOfClient.get(client) : undefined;
    if (previous) this.end(previous, 'replaced');
    const id = ++this.nextId;
    const records = rinfo.redirectRecords;
    const outbound = new RedirectUdpSocket({ type: net.isIPv6(destination.address) ? 'udp6' : 'udp4', mark: this.options.mark });
    // The listening socket keeps the process alive; a flow, like its idle timer, does not.
    outbound.unref();
    const log: FlowLog = {
      id, protocol: 'udp', client, destination: formatEndpoint(destination.address, destination.port),
      datagramsUp: 0, bytesUp: 0, datagramsDown: 0, bytesDown: 0, records: records?.length ?? 0, durationMs: 0, end: 'idle',
    };
    const flow: Flow = {
      id, key, client: { address: rinfo.address, port: rinfo.port }, destination, records, outbound, log, started: Date.now(),
      timer: setTimeout(() => this.end(flow, 'idle'), this.options.idleTimeout).unref(),
    };
    outbound.on('message', (reply, from) => {
      if (from.port !== destination.port || unmapped(from.address) !== destination.address) return; // not the destination's
      this.touch(flow);
      flow.log.datagramsDown += 1;
      flow.log.bytesDown += reply.length;
      // TPROXY: the client expects the reply from where it sent its datagram.
      const options = this.tproxy ? { from: destination } : {};
      this.socket.send(reply, flow.client.port, flow.client.address, options, (error) => {
        if (error) this.end(flow, 'error', errorCode(error));
      });
    });
    outbound.on('error', (error) => this.end(flow, 'error', errorCode(error)));
    this.flows.set(key, flow);
    if (this.byClient) this.flowOfClient.set(client, flow);
    return flow;
  }

  private touch(flow: Flow): void {
    flow.timer.refresh();
    this.flows.delete(flow.key);
    this.flows.set(flow.key, flow);
  }

  private end(flow: Flow, why: FlowEnd, error?: string): void {
    if (this.flows.get(flow.key) !== flow) return; // already ended
    this.flows.delete(flow.key);
    if (this.flowOfClient.get(flow.log.client) === flow) this.flowOfClient.delete(flow.log.client);
    clearTimeout(flow.timer);
    flow.outbound.close();
    flow.log.end = why;
    if (error !== undefined) flow.log.error = error;
    flow.log.durationMs = Date.now() - flow.started;
    this.options.log(flow.log);
  }
}
