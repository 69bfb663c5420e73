// bin/wfp-redirect-proxy: a transparent TCP proxy on the command line.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import cluster from 'node:cluster';
import net from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { type ConnectionLog, type Destination, type DestinationSource, TransparentProxy, formatEndpoint } from './tcp-proxy';
import { type FlowLog, type UdpDestinationSource, UdpRelay } from './udp-relay';
import { getOriginalDestination } from '../original-destination';
import { isSupported } from '../redirect';
import { LineWriter, survivesItsReader } from './line-writer';
import { LISTENING, REUSE_PORT, SHUTDOWN, runPrimary, workerNumber } from './workers';

const HELP = `Usage: wfp-redirect-proxy --listen HOST:PORT (--transparent | --context sockaddr[@OFFSET] | --upstream HOST:PORT) [options]

A transparent TCP (and, with --udp, UDP) proxy. Each accepted connection is
relayed, both ways, to its destination over an outbound connection that carries
the connection's WFP redirect records (Windows 8 / Server 2012 and later), so
WFP does not redirect the proxy's own connection again. A UDP flow's records
go with its first outbound datagram.

Where each connection goes:
  --transparent                its original destination, as the kernel knows it:
                               Linux: netfilter (iptables REDIRECT or DNAT; UDP:
                               an iptables TPROXY rule, which needs CAP_NET_ADMIN);
                               Windows: the WFP redirect context as a SOCKADDR
                               (UDP: the context of a flow's first datagram).
  --context sockaddr[@OFFSET]  the original destination, read from the WFP
                               redirect context as a Windows SOCKADDR_IN/IN6
                               starting at byte OFFSET (default 0). Windows only.
  --upstream HOST:PORT         one fixed destination for every connection (any
                               platform); on Windows the records are still
                               carried when the connection was redirected, and
                               a connection nobody redirected goes on without.

Options:
  --listen HOST:PORT           where to accept connections (IPv6 as [::1]:8888)
  --idle-timeout MS            close a connection idle this long (default 300000; 0: never)
  --connect-timeout MS         give up on a destination after this long (default 10000)
  --route-timeout MS           close a connection whose destination is not decided
                               (records, original destination, route) after this
                               long (default 10000; at least 1)
  --half-close-timeout MS      once one side has ended its half, close the
                               connection after this long with nothing moving
                               (default 30000; 0: only --idle-timeout applies)
  --max-connections N          refuse connections beyond N at once (default 1024; at least 1)
  --shutdown-timeout MS        on Ctrl+C or SIGTERM (Windows: also Ctrl+Break and
                               closing the console), let open connections finish
                               for this long, then close them (default 10000)
  --mark N                     Linux: SO_MARK N on every outbound connection and UDP
                               socket, so a rule like "-m mark ! --mark N" exempts
                               them from the redirect (needs CAP_NET_ADMIN)
  --workers N|auto             relay in N processes on the same port (auto: one per
                               core; default 1). Linux: each listens with
                               SO_REUSEPORT and the kernel spreads connections;
                               Windows: they share one listening socket. Log lines
                               name the worker. With --udp, worker 1 relays UDP
  --udp                        relay UDP too, on the same address and port
  --udp-idle-timeout MS        end a UDP flow idle this long (default 60000; at least 1)
  --max-udp-flows N            UDP flows at once; beyond it the one idle longest
                               ends (default 1024; at least 1)
  --max-udp-flows-per-source N UDP flows at once from one client address; beyond
                               it that address's flow idle longest ends, so one
                               host cannot end everyone's flows (default: a
                               quarter of --max-udp-flows; clients on this host
                               share one address)
  --log text|json              one line per connection, UDP flow and dropped
                               datagram on stdout (default text)
  --help                       this text
  --version                    the package version

Example (Linux, after: iptables -t nat -A OUTPUT -p tcp --dport 80 -m owner ! --uid-owner proxy -j REDIRECT --to-ports 8888):
  wfp-redirect-proxy --listen 127.0.0.1:8888 --transparent
Example (Windows, with a WFP callout driver that stores a SOCKADDR in the context):
  wfp-redirect-proxy --listen 127.0.0.1:8888 --transparent
Example (any platform): wfp-redirect-proxy --listen 127.0.0.1:8888 --upstream example.com:80
`;

class UsageError extends Error {}

/** The package's version: from package.json, or (in the single executable) the one build-sea.js wrote in. */
function packageVersion(): string {
  const built = (globalThis as { WFP_REDIRECT_VERSION?: string }).WFP_REDIRECT_VERSION;
  return built ?? JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version;
}

/**
 * What stops the proxy gracefully: Ctrl+C and SIGTERM everywhere; on Windows
 * also Ctrl+Break (SIGBREAK) and the console window closing (SIGHUP, after
 * which Windows allows the process about 10 s).
 */
export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] =
  process.platform === 'win32' ? ['SIGINT', 'SIGTERM', 'SIGBREAK', 'SIGHUP'] : ['SIGINT', 'SIGTERM'];

function endpoint(text: string, option: string): Destination {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !(port >= 0 && port <= 65535)) throw new UsageError(`${option} wants HOST:PORT (IPv6 as [::1]:PORT), not "${text}"`);
  return { host: match[1], port };
}

function count(text: string | undefined, option: string, fallback: number, least = 0): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isInteger(value) || value < least) {
    throw new UsageError(`${option} wants a whole number${least > 0 ? ` of at least ${least}` : ''}, not "${text}"`);
  }
  return value;
}

/** The original destination, from netfilter (Linux) or the WFP context as a SOCKADDR at `contextOffset` (Windows). */
function originalDestination(contextOffset: number): DestinationSource {
  return {
    kind: 'resolver',
    resolve: async (socket) => {
      const { address, port } = await getOriginalDestination(socket, { contextOffset });
      return { host: address, port };
    },
  };
}

function destinationSource(values: { context?: string; upstream?: string; transparent?: boolean }): DestinationSource {
  const given = [values.transparent ? 'transparent' : undefined, values.context, values.upstream].filter((v) => v !== undefined);
  if (given.length !== 1) throw new UsageError('give exactly one of --transparent, --context and --upstream');
  if (values.transparent) return originalDestination(0);
  if (values.upstream !== undefined) return { kind: 'upstream', upstream: endpoint(values.upstream, '--upstream') };
  const match = /^sockaddr(?:@(\d+))?$/.exec(values.context!);
  if (!match) throw new UsageError(`--context wants sockaddr or sockaddr@OFFSET, not "${values.context}"`);
  if (!isSupported()) throw new UsageError('--context reads the WFP redirect context, which exists only on Windows 8 / Server 2012 and later; use --transparent or --upstream here');
  return originalDestination(Number(match[1] ?? 0));
}

/** Where UDP flows go: the same choice as for TCP connections. */
function udpDestinationSource(tcp: DestinationSource, values: { context?: string }): UdpDestinationSource {
  if (tcp.kind === 'upstream') return tcp;
  return { kind: 'original', contextOffset: Number(/@(\d+)$/.exec(values.context ?? '')?.[1] ?? 0) };
}

function logger(format: string, worker: number | undefined, out: LineWriter): (entry: ConnectionLog | FlowLog) => void {
  if (format === 'json') {
    const named = worker === undefined ? {} : { worker };
    return (entry) => out.write(`${JSON.stringify({ time: new Date().toISOString(), ...named, ...entry })}\n`);
  }
  if (format !== 'text') throw new UsageError(`--log wants text or json, not "${format}"`);
  const who = worker === undefined ? '' : ` worker ${worker}`;
  return (entry) => {
    const time = new Date().toISOString() + who;
    if ('protocol' in entry) {
      out.write(
        `${time} udp#${entry.id} ${entry.client} -> ${entry.destination ?? '?'} up=${entry.datagramsUp}/${entry.bytesUp} ` +
          `down=${entry.datagramsDown}/${entry.bytesDown} records=${entry.records} ms=${entry.durationMs} end=${entry.end}` +
          `${entry.error ? ` error=${entry.error}` : ''}\n`,
      );
      return;
    }
    out.write(
      `${time} #${entry.id} ${entry.client} -> ${entry.destination ?? '?'} up=${entry.bytesUp} down=${entry.bytesDown} ` +
        `records=${entry.records} ms=${entry.durationMs} ${entry.error ? `error=${entry.error}` : 'ok'}\n`,
    );
  };
}

/** `--workers`: a whole number of at least 1, or auto (the cores this process may use). */
function workerCount(text: string | undefined): number {
  if (text === 'auto') return os.availableParallelism();
  const value = count(text, '--workers', 1, 1);
  if (value > 1 && isSingleExecutable()) {
    throw new UsageError('--workers needs the npm package\'s CLI (bin/wfp-redirect-proxy); the single executable relays in one process');
  }
  return value;
}

function isSingleExecutable(): boolean {
  try {
    return (require('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    return false;
  }
}

/** Runs the CLI; resolves to the exit code once the proxy has stopped. */
export async function main(argv: string[]): Promise<number> {
  // A reader of stderr that goes away must not end the proxy either; there is nowhere left to say so.
  const stopWatchingStderr = survivesItsReader(process.stderr, () => {});
  const lines = new LineWriter(process.stdout, (message) => process.stderr.write(`${processName()}: ${message}\n`));
  try {
    return await run(argv, lines);
  } finally {
    lines.close();
    stopWatchingStderr();
  }
}

/** How this process names itself on stderr: the CLI, or one worker of it. */
function processName(): string {
  const worker = workerNumber();
  return worker === undefined ? 'wfp-redirect-proxy' : `wfp-redirect-proxy: worker ${worker}`;
}

async function run(argv: string[], lines: LineWriter): Promise<number> {
  let proxy: TransparentProxy;
  let udp: UdpRelay | undefined;
  let shutdownTimeout: number;
  let workers: number;
  let listen: Destination;
  // In a worker of --workers N: its number, in every line it writes.
  const worker = workerNumber();
  const name = processName();
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        listen: { type: 'string' },
        upstream: { type: 'string' },
        context: { type: 'string' },
        transparent: { type: 'boolean' },
        'idle-timeout': { type: 'string' },
        'connect-timeout': { type: 'string' },
        'route-timeout': { type: 'string' },
        'half-close-timeout': { type: 'string' },
        'max-connections': { type: 'string' },
        'shutdown-timeout': { type: 'string' },
        udp: { type: 'boolean' },
        workers: { type: 'string' },
        mark: { type: 'string' },
        'udp-idle-timeout': { type: 'string' },
        'max-udp-flows': { type: 'string' },
        'max-udp-flows-per-source': { type: 'string' },
        log: { type: 'string', default: 'text' },
        help: { type: 'boolean' },
        version: { type: 'boolean' },
      },
      strict: true,
    });
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (values.version) {
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    }
    if (values.listen === undefined) throw new UsageError('--listen HOST:PORT is required');
    shutdownTimeout = count(values['shutdown-timeout'], '--shutdown-timeout', 10_000);
    listen = endpoint(values.listen, '--listen');
    workers = workerCount(values.workers);
    // The primary chose the port when --listen said 0 (each worker's own socket would get another).
    if (worker !== undefined && process.env.WFP_REDIRECT_WORKER_PORT) listen.port = Number(process.env.WFP_REDIRECT_WORKER_PORT);
    const destination = destinationSource(values);
    const log = logger(values.log!, worker, lines);
    const mark = values.mark === undefined ? undefined : count(values.mark, '--mark', 0);
    if (mark !== undefined && mark > 0xffffffff) throw new UsageError(`--mark wants a number from 0 to 4294967295, not "${values.mark}"`);
    if (mark !== undefined && process.platform !== 'linux') {
      throw new UsageError('--mark sets SO_MARK, which is Linux\'s; on Windows the redirect records keep the proxy\'s own connections from being redirected');
    }
    const warn = (message: string) => process.stderr.write(`${name}: ${message}\n`);
    proxy = new TransparentProxy({
      listen,
      destination,
      idleTimeout: count(values['idle-timeout'], '--idle-timeout', 300_000),
      connectTimeout: count(values['connect-timeout'], '--connect-timeout', 10_000),
      routeTimeout: count(values['route-timeout'], '--route-timeout', 10_000, 1),
      halfCloseTimeout: count(values['half-close-timeout'], '--half-close-timeout', 30_000),
      // At least 1: a proxy that refuses every connection is a mistake, and 0 would not even mean that to Node.
      maxConnections: count(values['max-connections'], '--max-connections', 1024, 1),
      log,
      mark,
      warn,
      reusePort: worker !== undefined && REUSE_PORT,
    });
    const udpIdle = count(values['udp-idle-timeout'], '--udp-idle-timeout', 60_000, 1);
    const maxFlows = count(values['max-udp-flows'], '--max-udp-flows', 1024, 1);
    const maxFlowsPerSource = count(values['max-udp-flows-per-source'], '--max-udp-flows-per-source', Math.max(1, Math.floor(maxFlows / 4)), 1);
    if (!values.udp && (['udp-idle-timeout', 'max-udp-flows', 'max-udp-flows-per-source'] as const).some((name) => values[name] !== undefined)) {
      throw new UsageError('--udp-idle-timeout, --max-udp-flows and --max-udp-flows-per-source need --udp');
    }
    // A UDP flow's datagrams must all reach the one process holding its outbound socket: worker 1 relays UDP.
    if (values.udp && (worker ?? 1) === 1) {
      if (net.isIP(listen.host) === 0) throw new UsageError(`--udp needs --listen with an IP address, not "${listen.host}"`);
      udp = new UdpRelay({ listen, destination: udpDestinationSource(destination, values), idleTimeout: udpIdle, maxFlows, maxFlowsPerSource, log, mark, warn });
    }
  } catch (error) {
    const known = error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`wfp-redirect-proxy: ${(error as Error).message}\n${known ? 'Try --help.\n' : ''}`);
    return 2;
  }

  if (workers > 1 && cluster.isPrimary) {
    const say = (message: string) => process.stderr.write(`wfp-redirect-proxy: ${message}\n`);
    return runPrimary({ count: workers, listen, signals: SHUTDOWN_SIGNALS, say });
  }

  try {
    const address = await proxy.listen();
    process.stderr.write(`${name}: listening on ${formatEndpoint(address.address, address.port)}\n`);
    if (udp) {
      // The port TCP got, so that a port of 0 means one port for both.
      const bound = await udp.listen(address.port);
      process.stderr.write(`${name}: relaying UDP on ${formatEndpoint(bound.address, bound.port)}\n`);
    }
  } catch (error) {
    process.stderr.write(`${name}: cannot start: ${(error as Error).message}\n`);
    return 1;
  }
  if (worker !== undefined) {
    process.send?.({ type: LISTENING });
    // The channel to the primary must not keep a stopped worker alive.
    process.channel?.unref();
  }

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const stop = (received: NodeJS.Signals) => {
      for (const name of SHUTDOWN_SIGNALS) process.off(name, stop);
      process.off('message', onMessage);
      resolve(received);
    };
    // A worker stops when the primary says so: the signal may have reached the primary alone.
    const onMessage = (message: { type?: string; signal?: NodeJS.Signals }) => {
      if (message?.type === SHUTDOWN) stop(message.signal ?? 'SIGTERM');
    };
    for (const name of SHUTDOWN_SIGNALS) process.on(name, stop);
    if (worker !== undefined) process.on('message', onMessage);
  });
  process.stderr.write(`${name}: ${signal}: not accepting; letting ${proxy.connections} open connection(s) finish for up to ${shutdownTimeout} ms\n`);
  // A second signal does not wait for the deadline.
  const forceExit = () => process.exit(130);
  for (const name of SHUTDOWN_SIGNALS) process.once(name, forceExit);
  try {
    const [cut, flows] = await Promise.all([proxy.shutdown(shutdownTimeout), udp?.shutdown() ?? 0]);
    lines.flush();
    process.stderr.write(`${name}: stopped${cut ? `, ${cut} connection(s) cut at the deadline` : ''}${flows ? `, ${flows} UDP flow(s) ended` : ''}\n`);
  } finally {
    for (const name of SHUTDOWN_SIGNALS) process.off(name, forceExit);
  }
  return 0;
}
