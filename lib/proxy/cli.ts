// bin/wfp-redirect-proxy: a transparent TCP (and UDP) proxy on the command
// line. The arguments are read in cli-args.ts; here the relays are built,
// started, and stopped on a signal.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import cluster from 'node:cluster';
import type { ContextLayout } from '../context-layouts';
import { getOriginalDestination } from '../original-destination';
import { isSupported } from '../redirect';
import { type CliConfig, HELP, parseCli, UsageError } from './cli-args';
import { formatEndpoint } from './endpoints';
import { LineWriter, survivesItsReader } from './line-writer';
import { formatter, type LogEntry } from './log-format';
import { nativeRelayUnavailable } from './native-relay';
import { type Destination, type DestinationSource, TransparentProxy } from './tcp-proxy';
import { type UdpDestinationSource, UdpRelay } from './udp-relay';
import { StopRequests } from './stop-requests';
import { LISTENING, RELOAD, REUSE_PORT, runPrimary, workerNumber } from './workers';
import { ConfigError, describeVerdict, ExplainQueryError, loadConfig, parseExplainQuery, RuleMatcher, RuleSet } from './rules/index';

/**
 * What stops the proxy gracefully: Ctrl+C and SIGTERM everywhere; on Windows
 * also Ctrl+Break (SIGBREAK) and the console window closing (SIGHUP, after
 * which Windows allows the process about 10 s).
 */
export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] =
  process.platform === 'win32' ? ['SIGINT', 'SIGTERM', 'SIGBREAK', 'SIGHUP'] : ['SIGINT', 'SIGTERM'];

/** The package's version: from package.json, or (in the single executable) the one build-sea.js wrote in. */
function packageVersion(): string {
  const built = (globalThis as { WFP_REDIRECT_VERSION?: string }).WFP_REDIRECT_VERSION;
  return built ?? JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version;
}

function isSingleExecutable(): boolean {
  try {
    return (require('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    return false;
  }
}

/** How this process names itself on stderr: the CLI, or one worker of it. */
function processName(): string {
  const worker = workerNumber();
  return worker === undefined ? 'wfp-redirect-proxy' : `wfp-redirect-proxy: worker ${worker}`;
}

const say = (message: string): void => void process.stderr.write(`${processName()}: ${message}\n`);

/** Runs the CLI; resolves to the exit code once the proxy has stopped. */
export async function main(argv: string[]): Promise<number> {
  // A reader of stderr that goes away must not end the proxy either; there is nowhere left to say so.
  const stopWatchingStderr = survivesItsReader(process.stderr, () => {});
  const lines = new LineWriter(process.stdout, say);
  try {
    return await run(argv, lines);
  } finally {
    lines.close();
    stopWatchingStderr();
  }
}

async function run(argv: string[], lines: LineWriter): Promise<number> {
  let config: CliConfig;
  let relays: Relays;
  let rules: RuleSet | undefined;
  try {
    const parsed = parseCli(argv, { windows8: isSupported, singleExecutable: isSingleExecutable() });
    if ('help' in parsed) return void process.stdout.write(HELP), 0;
    if ('version' in parsed) return void process.stdout.write(`${packageVersion()}\n`), 0;
    if ('explain' in parsed) return explain(parsed.explain.file, parsed.explain.query);
    config = parsed.config;
    // Checked here, before any worker starts: a bad file stops the start with its reason.
    rules = config.rulesFile === undefined ? undefined : new RuleSet(config.rulesFile, { udp: config.udp !== undefined });
    if (config.workers > 1 && cluster.isPrimary) {
      return runPrimary({ count: config.workers, listen: config.listen, signals: SHUTDOWN_SIGNALS, say, shutdownTimeout: config.shutdownTimeout, reload: rules !== undefined && RELOAD_SIGNAL !== undefined });
    }
    relays = build(config, lines, rules);
  } catch (error) {
    const known = error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`wfp-redirect-proxy: ${(error as Error).message}\n${known ? 'Try --help.\n' : ''}`);
    return 2;
  }
  const worker = workerNumber() !== undefined;
  // A worker hears the primary's words from here on: a RELOAD while it starts must find the reload's listener too.
  const requests = new StopRequests(SHUTDOWN_SIGNALS, { worker });
  let stopReloading = () => {};
  try {
    // Also before start() for a lone proxy: SIGHUP (Linux) reads the rules while it starts too, as it would after.
    if (rules) stopReloading = reloadOn(rules);
    // The group's Ctrl+C as a worker starts is a graceful stop once it has, not a death the primary would report.
    // A lone proxy still ends at once on a shutdown signal while it starts (a name that takes long to resolve, say).
    if (worker) requests.hearSignals();
    if (!(await start(relays, config))) return 1;
    if (!worker) requests.hearSignals();
    const signal = await requests.first;
    stopReloading();
    return await stop(relays, config, lines, signal, requests.again);
  } finally {
    stopReloading();
    requests.close();
  }
}

/** --explain: the rule that would decide a described connection, on stdout; 0, or 2 for a bad query or config. */
function explain(file: string, query: string): number {
  try {
    const matcher = new RuleMatcher(loadConfig(file));
    process.stdout.write(`${describeVerdict(matcher.match(parseExplainQuery(query)))}\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError || error instanceof ExplainQueryError)) throw error;
    process.stderr.write(`wfp-redirect-proxy: ${error.message}\n`);
    return 2;
  }
}

/** What reads the rules again: SIGHUP, except on Windows, where SIGHUP is the console closing (a shutdown) and a change of the file does. */
const RELOAD_SIGNAL: NodeJS.Signals | undefined = process.platform === 'win32' ? undefined : 'SIGHUP';

/** Reads the rules again on SIGHUP (a worker: on the primary's word), or on Windows on a change of the file; returns what stops that. */
function reloadOn(rules: RuleSet): () => void {
  const reload = () => {
    try {
      const { config } = rules.reload();
      say(`reloaded ${rules.file}: ${config.rules.length} rule(s); new connections and flows follow them`);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      say(`not reloaded, the rules in force stay: ${error.message}`);
    }
  };
  const onMessage = (message: { type?: string }) => message?.type === RELOAD && reload();
  if (workerNumber() !== undefined) process.on('message', onMessage);
  else if (RELOAD_SIGNAL) process.on(RELOAD_SIGNAL, reload);
  if (!RELOAD_SIGNAL) rules.watch(reload);
  return () => {
    process.off('message', onMessage);
    if (RELOAD_SIGNAL) process.off(RELOAD_SIGNAL, reload);
    rules.unwatch();
  };
}

interface Relays {
  tcp: TransparentProxy;
  udp: UdpRelay | undefined;
}

/**
 * The original destination, from netfilter (Linux) or the WFP context in
 * `layout` (Windows); a connection redirected without a context goes to
 * `withoutContext` where one is given. (Without it the proxy knows the source
 * as such, and on Linux can accept natively with --relay native.)
 */
function originalDestination(layout: ContextLayout, withoutContext: Destination | undefined): DestinationSource {
  if (!withoutContext) return { kind: 'original', layout };
  return {
    kind: 'resolver',
    resolve: async (socket) => {
      try {
        return await getOriginalDestination(socket, { layout });
      } catch (error) {
        if (withoutContext && (error as { code?: string }).code === 'ERR_REDIRECTED_WITHOUT_CONTEXT') return withoutContext;
        throw error;
      }
    },
  };
}

/** The relays the configuration asks for, not yet listening. */
function build(config: CliConfig, lines: LineWriter, rules: RuleSet | undefined): Relays {
  const worker = workerNumber();
  const line = formatter({ format: config.log, worker, records: process.platform === 'win32' });
  const log = (entry: LogEntry) => lines.write(line(entry));
  const logStart = config.logStart ? (entry: LogEntry) => lines.write(line(entry, 'start')) : undefined;
  const { mode, mark } = config;
  // The primary chose the port when --listen said 0 (each worker's own socket would get another).
  const listen = worker !== undefined && process.env.WFP_REDIRECT_WORKER_PORT ? { ...config.listen, port: Number(process.env.WFP_REDIRECT_WORKER_PORT) } : config.listen;
  const tcp = new TransparentProxy({
    listen,
    destination: mode.kind === 'upstream' ? mode : originalDestination(mode.layout, mode.withoutContext),
    idleTimeout: config.idleTimeout,
    connectTimeout: config.connectTimeout,
    routeTimeout: config.routeTimeout,
    halfCloseTimeout: config.halfCloseTimeout,
    maxConnections: config.maxConnections,
    sniff: config.sniff,
    // auto: native where this build has it, streams (silently) elsewhere; an explicit native that cannot be says so once.
    relay: config.relay === 'auto' ? (nativeRelayUnavailable() ? 'streams' : 'native') : config.relay,
    processLookup: config.processLookup,
    via: config.via,
    rules,
    log,
    logStart,
    mark,
    warn: say,
    reusePort: worker !== undefined && REUSE_PORT,
  });
  // A UDP flow's datagrams must all reach the one process holding its outbound socket: worker 1 relays UDP.
  if (!config.udp || (worker ?? 1) !== 1) return { tcp, udp: undefined };
  const destination: UdpDestinationSource = mode.kind === 'upstream' ? mode : { kind: 'original', layout: mode.layout };
  const udp = new UdpRelay({ listen, destination, ...config.udp, log, logStart, mark, warn: say, via: config.via, rules, sniff: config.sniff, processLookup: config.processLookup });
  return { tcp, udp };
}

/** What the listening line says of where connections go. */
function describeMode(config: CliConfig): string {
  const { mode } = config;
  const where =
    mode.kind === 'upstream'
      ? `to the upstream ${formatEndpoint(mode.upstream.host, mode.upstream.port)}`
      : process.platform === 'win32'
        ? `to their original destinations, from the WFP redirect context (layout ${mode.layout})`
        : 'to their original destinations, from netfilter';
  const rules = config.rulesFile === undefined ? '' : `, decided by the rules in ${config.rulesFile}`;
  return `${where}${config.via ? ` through ${config.via.display}` : ''}${rules}${config.mark === undefined ? '' : `, outbound marked ${config.mark}`}`;
}

/** Times a port the OS picked for TCP (--listen ...:0) is given up for another when UDP finds it taken. */
const PORT_ATTEMPTS = 5;

/**
 * Listens: TCP, then UDP on the port TCP got. With port 0, a port free for
 * TCP may be taken for UDP (another program's socket): then TCP tries
 * another. False when it cannot start, said on stderr.
 */
async function start({ tcp, udp }: Relays, config: CliConfig): Promise<boolean> {
  let address: { address: string; port: number } | undefined;
  let bound: { address: string; port: number } | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      address = await tcp.listen();
      bound = udp ? await udp.listen(address.port) : undefined;
      break;
    } catch (error) {
      const taken = (error as { code?: string }).code === 'EADDRINUSE' && address !== undefined && config.listen.port === 0;
      if (taken && attempt < PORT_ATTEMPTS) {
        // Not tcp.server.close(): where the addon accepts, the listening socket is its own.
        await tcp.shutdown(0);
        continue;
      }
      // TCP may listen already (UDP's port was taken): it must not accept while the process exits, nor once this is
      // said. Then nothing is left to keep a worker alive, and its channel to the primary must not either.
      await tcp.shutdown(0);
      say(`cannot start: ${(error as Error).message}`);
      if (workerNumber() !== undefined) process.channel?.unref();
      return false;
    }
  }
  if (workerNumber() !== undefined) {
    // Told before the line below, which is what scripts wait for: a worker killed once it is seen listening has told the primary.
    await new Promise<void>((resolve) => (process.send ? process.send({ type: LISTENING }, undefined, {}, () => resolve()) : resolve()));
    // The channel to the primary must not keep a stopped worker alive.
    process.channel?.unref();
  }
  // The port last: scripts and tests read it from the line's end.
  say(`relaying ${describeMode(config)}; listening on ${formatEndpoint(address.address, address.port)}`);
  if (bound) say(`relaying UDP on ${formatEndpoint(bound.address, bound.port)}`);
  return true;
}

/** How long a stopping proxy waits at least for its log's reader, even once connections took the whole deadline. */
const LOG_DRAIN_MIN_MS = 2_000;

/**
 * Stops accepting, lets open connections finish until the deadline, ends UDP flows, and waits for the log to be
 * written (what is left of the deadline, at least LOG_DRAIN_MIN_MS); resolves to the exit code.
 */
async function stop({ tcp, udp }: Relays, config: CliConfig, lines: LineWriter, signal: NodeJS.Signals, again: Promise<void>): Promise<number> {
  say(`${signal}: not accepting; letting ${tcp.connections} open connection(s) finish for up to ${config.shutdownTimeout} ms`);
  // A second signal does not wait for the deadline (in a worker, the primary's word that it got one).
  void again.then(() => process.exit(130));
  const started = Date.now();
  const [cut, flows] = await Promise.all([tcp.shutdown(config.shutdownTimeout), udp?.shutdown() ?? 0]);
  // The log's reader may be behind: what it has not taken when the process exits is lost.
  const logWait = Math.max(LOG_DRAIN_MIN_MS, config.shutdownTimeout - (Date.now() - started));
  const unwritten = await lines.finish(logWait);
  if (unwritten) say(`up to ${unwritten} log line(s) not written: the log's reader did not take them within ${logWait} ms`);
  say(`stopped${cut ? `, ${cut} connection(s) cut at the deadline` : ''}${flows ? `, ${flows} UDP flow(s) ended` : ''}`);
  return 0;
}
