// The CLI's arguments: parsed and checked into one configuration, each
// mistake a UsageError that names the option, the value and what it accepts.
// Nothing here starts anything.
import os from 'node:os';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { CONTEXT_LAYOUT_NAMES, type ContextLayout, parseContextLayout } from '../context-layouts';
import { checkPort } from '../ports';
import { parseUpstream, type Upstream } from '../upstream/url';
import type { Destination } from './tcp-proxy';

export const HELP = `Usage: wfp-redirect-proxy --listen HOST:PORT (--transparent | --context LAYOUT | --upstream HOST:PORT) [options]

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
  --context LAYOUT             the original destination, read from the WFP
                               redirect context laid out as the callout driver
                               writes it (Windows only; docs/redirectors.md):
                               sockaddr[@OFFSET]  a SOCKADDR_IN/IN6 at OFFSET (0)
                               wfpsampler         Microsoft's WFPSampler (remote,
                                                  then local SOCKADDR_STORAGE)
                               wfpr               the layout this project
                                                  recommends to driver authors
  --via URL                    reach each destination through an upstream proxy:
                               socks5://[USER:PASS@]HOST:PORT (names resolved
                               here), socks5h://... (names sent to the upstream),
                               http://[USER:PASS@]HOST:PORT (HTTP CONNECT); a
                               password may come from an environment variable
                               (?password_env=NAME). With --udp, a SOCKS5 upstream
                               carries the flows (UDP ASSOCIATE). Never logged with
                               its credentials
  --without-context refuse|HOST:PORT
                               Windows: a connection a callout redirected without
                               storing a context (FWP_E_NOT_FOUND) is refused
                               (default, logged ERR_REDIRECTED_WITHOUT_CONTEXT) or
                               goes to HOST:PORT, still carrying its records
  --upstream HOST:PORT         one fixed destination for every connection (any
                               platform); on Windows the records are still
                               carried when the connection was redirected, and
                               a connection nobody redirected goes on without.

Options:
  --listen HOST:PORT           where to accept connections (IPv6 as [::1]:8888;
                               a bare PORT or :PORT means 127.0.0.1:PORT)
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
                               datagram on stdout, as each ends (default text)
  --log-start                  also a line as each connection's destination is
                               decided and each UDP flow opens
  --relay auto|native|streams  how TCP bytes move once a connection is set up:
                               natively in the addon, never crossing into
                               JavaScript (Linux: where nothing is decided per
                               connection, accepted and connected there too;
                               Windows: after a connection's first 256 KiB),
                               or on Node streams. auto (default): native where
                               the addon has it, else streams; native: said
                               once where it falls back
  --sniff                      read each TCP connection's first bytes (up to 16 KiB,
                               300 ms) for its domain: a TLS ClientHello's SNI or an
                               HTTP request's Host; logged, and replayed unchanged.
                               With --udp: the server name of a QUIC Initial in each
                               flow's first datagram
  --config FILE                decide each connection and UDP flow by the rules in
                               FILE (JSON: "upstreams", "rules", "default"; see the
                               README): direct, through a named upstream, or block
                               (TCP: a reset; UDP: the flow dropped). Goes with
                               --transparent or --context, not --upstream or --via
                               (name upstreams in the file; "default": {"via": NAME}).
                               A rule with "domain" turns sniffing on. Linux: SIGHUP
                               reads FILE again (with --workers, send it to the
                               primary); Windows: a change of FILE does. A bad new
                               file is refused on stderr and the old rules stay
  --explain QUERY              with --config: print the rule that would decide QUERY,
                               "[tcp|udp] HOST:PORT [process=NAME|PATH] [domain=NAME]"
                               (HOST an IP address or a domain name), and exit (0;
                               2 for a bad query or config)
  --process                    name the process behind each connection and UDP
                               flow whose client is on this host (pid, name,
                               path) in the log: Linux through sock_diag and
                               /proc (root, or the same user, to read another
                               user's processes), Windows through the owner-pid
                               tables; unknown for remote clients. Rules that
                               name a process look processes up without it
  -h, --help                   this text
  --version                    the package version

Example (Linux, after: iptables -t nat -A OUTPUT -p tcp --dport 80 -m owner ! --uid-owner proxy -j REDIRECT --to-ports 8888):
  wfp-redirect-proxy --listen 127.0.0.1:8888 --transparent
Example (Windows, with a WFP callout driver that stores a SOCKADDR in the context):
  wfp-redirect-proxy --listen 127.0.0.1:8888 --transparent
Example (any platform): wfp-redirect-proxy --listen 127.0.0.1:8888 --upstream example.com:80
`;

/** A mistake in the command line: exit code 2, with "Try --help." */
export class UsageError extends Error {}

const OPTIONS = {
  listen: { type: 'string' },
  upstream: { type: 'string' },
  via: { type: 'string' },
  context: { type: 'string' },
  'without-context': { type: 'string' },
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
  log: { type: 'string' },
  'log-start': { type: 'boolean' },
  sniff: { type: 'boolean' },
  relay: { type: 'string' },
  process: { type: 'boolean' },
  config: { type: 'string' },
  explain: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseOptions>['values'];

/** Where connections go: their original destination (on Windows, the WFP context read in a layout), or one upstream. */
export type Mode =
  | {
      kind: 'original';
      layout: ContextLayout;
      /** Windows: where a connection redirected without a context goes; undefined to refuse it. */
      withoutContext: Destination | undefined;
    }
  | { kind: 'upstream'; upstream: Destination };

export interface CliConfig {
  listen: Destination;
  mode: Mode;
  idleTimeout: number;
  connectTimeout: number;
  routeTimeout: number;
  halfCloseTimeout: number;
  maxConnections: number;
  shutdownTimeout: number;
  mark: number | undefined;
  workers: number;
  /** UDP too, with these bounds; undefined without --udp. */
  udp: { idleTimeout: number; maxFlows: number; maxFlowsPerSource: number } | undefined;
  log: 'text' | 'json';
  logStart: boolean;
  sniff: boolean;
  /** --relay: how TCP bytes move once a connection is set up (auto: native where the addon has it). */
  relay: 'streams' | 'native' | 'auto';
  /** --process: look up the process behind each connection and flow. */
  processLookup: boolean;
  /** The upstream proxy every connection goes through. */
  via: Upstream | undefined;
  /** The rules file (--config). */
  rulesFile: string | undefined;
}

export type Parsed = { help: true } | { version: true } | { explain: { file: string; query: string } } | { config: CliConfig };

/**
 * parseArgs, with two things it does not do: a value that looks like a
 * negative number is the option's value (so that "--idle-timeout -5" is
 * refused for its value, not as "ambiguous"), and an option given twice is a
 * mistake rather than the last one winning.
 */
function parseOptions(argv: string[]) {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const negative = /^--[a-z-]+$/.test(argv[i]) && /^-\d/.test(argv[i + 1] ?? '');
    args.push(negative ? `${argv[i]}=${argv[++i]}` : argv[i]);
  }
  const { values, tokens } = parseArgs({ args, options: OPTIONS, strict: true, tokens: true });
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name)) throw new UsageError(`--${token.name} was given more than once; give it once`);
    seen.add(token.name);
  }
  return { values };
}

/** HOST:PORT, [IPv6]:PORT, :PORT or PORT (the last two on 127.0.0.1). */
export function endpoint(text: string, option: string): Destination {
  const match = /^\[([^\]]+)\]:([^:]*)$/.exec(text) ?? /^([^:]*):([^:]*)$/.exec(text) ?? /^()(\d+)$/.exec(text);
  if (!match) throw new UsageError(`${option} wants HOST:PORT, [IPv6]:PORT or PORT, not "${text}"`);
  const host = match[1] === '' ? '127.0.0.1' : match[1];
  if (/^\d+$/.test(match[2]) && Number(match[2]) > 65535) throw new UsageError(`${option}: port ${match[2]} is out of range (0 to 65535)`);
  try {
    return { host, port: checkPort(match[2], `${option}'s port`, 0) };
  } catch {
    throw new UsageError(`${option}: "${match[2]}" is not a port (a whole number from 0 to 65535)`);
  }
}

/** A whole number of at least `least` (and at most `most`), or `fallback` when the option is absent. */
export function count(text: string | undefined, option: string, fallback: number, least = 0, most = Number.MAX_SAFE_INTEGER): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(value) || value < least || value > most) {
    const range = most === Number.MAX_SAFE_INTEGER ? `of at least ${least}` : `from ${least} to ${most}`;
    throw new UsageError(`${option} wants a whole number ${range}, not "${text}"`);
  }
  return value;
}

function mode(values: Values, windows8: () => boolean): Mode {
  const given = [values.transparent ? '--transparent' : undefined, values.context === undefined ? undefined : '--context', values.upstream === undefined ? undefined : '--upstream'].filter(Boolean);
  if (given.length !== 1) throw new UsageError(`give exactly one of --transparent, --context and --upstream${given.length ? ` (got ${given.join(' and ')})` : ''}`);
  if (values.upstream !== undefined) {
    if (values['without-context'] !== undefined) throw new UsageError('--without-context goes with --transparent or --context: with --upstream every connection goes there');
    return { kind: 'upstream', upstream: endpoint(values.upstream, '--upstream') };
  }
  const fallback = values['without-context'];
  const withoutContext = fallback === undefined || fallback === 'refuse' ? undefined : endpoint(fallback, '--without-context');
  if (values.transparent) return { kind: 'original', layout: 'sockaddr', withoutContext };
  let layout: ContextLayout;
  try {
    layout = parseContextLayout(values.context);
  } catch {
    throw new UsageError(`--context wants ${CONTEXT_LAYOUT_NAMES.join(', ')} (OFFSET 0 to 65535), not "${values.context}"`);
  }
  if (!windows8()) throw new UsageError('--context reads the WFP redirect context, which exists only on Windows 8 / Server 2012 and later; use --transparent or --upstream here');
  return { kind: 'original', layout, withoutContext };
}

function workerCount(text: string | undefined, singleExecutable: boolean): number {
  const value = text === 'auto' ? os.availableParallelism() : count(text, '--workers', 1, 1, 1024);
  if (value > 1 && singleExecutable) {
    throw new UsageError('--workers needs the npm package\'s CLI (bin/wfp-redirect-proxy); the single executable relays in one process');
  }
  return value;
}

function markOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (process.platform !== 'linux') {
    throw new UsageError('--mark sets SO_MARK, which is Linux\'s; on Windows the redirect records keep the proxy\'s own connections from being redirected');
  }
  return count(text, '--mark', 0, 0, 0xffffffff);
}

/** `--via URL`: parsed now, so that a mistake stops the start and no log line ever carries the credentials. */
function viaOption(text: string | undefined): Upstream | undefined {
  if (text === undefined) return undefined;
  try {
    return parseUpstream(text);
  } catch (error) {
    throw new UsageError(`--via: ${(error as Error).message}`);
  }
}

/** --config: rules decide per connection where it goes, so neither one fixed destination nor one upstream for all. */
function relayOption(value: string | undefined): 'streams' | 'native' | 'auto' {
  if (value === undefined || value === 'streams' || value === 'native' || value === 'auto') return value ?? 'auto';
  throw new UsageError(`--relay wants auto, native or streams, not "${value}"`);
}

function configOption(values: Values): string | undefined {
  if (values.config === undefined) return undefined;
  if (values.upstream !== undefined) throw new UsageError('--config decides by each connection\'s original destination; with --upstream every connection goes to one place: use --transparent or --context');
  if (values.via !== undefined) throw new UsageError('--config with --via: name the upstream in the config file ("upstreams") and send everything else through it with "default": { "via": NAME }');
  if (values.config === '') throw new UsageError('--config wants a file name');
  return values.config;
}

function udpOptions(values: Values, listen: Destination): CliConfig['udp'] {
  const names = ['udp-idle-timeout', 'max-udp-flows', 'max-udp-flows-per-source'] as const;
  if (values.udp && values.via !== undefined && /^http:/i.test(values.via)) {
    throw new UsageError('--udp with an http:// --via: HTTP CONNECT carries no UDP; use a socks5:// or socks5h:// upstream (UDP ASSOCIATE), or a second proxy without --via for UDP');
  }
  if (!values.udp) {
    if (names.some((name) => values[name] !== undefined)) throw new UsageError('--udp-idle-timeout, --max-udp-flows and --max-udp-flows-per-source need --udp');
    return undefined;
  }
  if (net.isIP(listen.host) === 0) throw new UsageError(`--udp needs --listen with an IP address, not "${listen.host}"`);
  const maxFlows = count(values['max-udp-flows'], '--max-udp-flows', 1024, 1);
  return {
    idleTimeout: count(values['udp-idle-timeout'], '--udp-idle-timeout', 60_000, 1),
    maxFlows,
    maxFlowsPerSource: count(values['max-udp-flows-per-source'], '--max-udp-flows-per-source', Math.max(1, Math.floor(maxFlows / 4)), 1),
  };
}

/**
 * The command line as a configuration; throws UsageError (or parseArgs' own
 * ERR_PARSE_ARGS_* errors). `windows8` is asked only for --context (it loads
 * the addon).
 */
export function parseCli(argv: string[], platform: { windows8: () => boolean; singleExecutable: boolean }): Parsed {
  const { values } = parseOptions(argv);
  if (values.help) return { help: true };
  if (values.version) return { version: true };
  if (values.explain !== undefined) {
    if (values.config === undefined) throw new UsageError('--explain needs --config FILE: the rules to explain');
    return { explain: { file: values.config, query: values.explain } };
  }
  if (values.listen === undefined) throw new UsageError('--listen HOST:PORT is required');
  const listen = endpoint(values.listen, '--listen');
  const log = values.log ?? 'text';
  if (log !== 'text' && log !== 'json') throw new UsageError(`--log wants text or json, not "${log}"`);
  return {
    config: {
      listen,
      mode: mode(values, platform.windows8),
      idleTimeout: count(values['idle-timeout'], '--idle-timeout', 300_000),
      connectTimeout: count(values['connect-timeout'], '--connect-timeout', 10_000),
      routeTimeout: count(values['route-timeout'], '--route-timeout', 10_000, 1),
      halfCloseTimeout: count(values['half-close-timeout'], '--half-close-timeout', 30_000),
      // At least 1: a proxy that refuses every connection is a mistake, and 0 would not even mean that to Node.
      maxConnections: count(values['max-connections'], '--max-connections', 1024, 1),
      shutdownTimeout: count(values['shutdown-timeout'], '--shutdown-timeout', 10_000),
      mark: markOption(values.mark),
      workers: workerCount(values.workers, platform.singleExecutable),
      udp: udpOptions(values, listen),
      log,
      logStart: values['log-start'] ?? false,
      sniff: values.sniff ?? false,
      relay: relayOption(values.relay),
      processLookup: values.process ?? false,
      via: viaOption(values.via),
      rulesFile: configOption(values),
    },
  };
}
