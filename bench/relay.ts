// npm run bench (second part): relay speed, side by side. The proxy CLI and
// what users would use instead, each in its own process, with the load
// (bench/relay-load.ts) and the server (bench/relay-server.ts) in two more,
// all on this machine's loopback:
//   - bulk MB/s over 1 and 8 streams, connections/s, and p50/p99 of the time
//     from connect to a 32-byte echo with 32 connections in flight;
//   - the CLI with --upstream (its default relay, and --relay streams),
//     --workers auto, and (Linux, as root, with
//     iproute2 and iptables) --transparent behind an iptables REDIRECT in a
//     network namespace of its own; a plain Node `net` pipe proxy (the floor);
//     socat and HAProxy (one thread, and as many threads as cores) when installed;
//   - through an upstream proxy (bench/relay-upstreams.ts), in the namespace:
//     the CLI with --transparent --via socks5:// in front of dante and redsocks
//     in front of the same dante, and the same two with HTTP CONNECT in front
//     of tinyproxy, behind one iptables REDIRECT of the load's user's
//     connections. Goal: the CLI at least at redsocks' figures.
// Runs are interleaved (each run goes through every proxy) and each figure is
// the median over the runs. Goals: the CLI (--upstream) at least 1.0x the Node
// pipe on all three figures; issue 28's, the CLI at least HAProxy 1 thread on
// 1-stream and 8-stream MB/s, at least the pipe on connections/s, with a p99
// no worse than the JavaScript relay's (--relay streams) in the same run;
// aim: --workers auto at least HAProxy's with the same number of threads.
//
// --windows (npm run bench:win32): the proxies are Windows node.exe under
// Wine (the load and the server stay native), the CLI with --upstream and with
// --transparent against the simulated WFP service (test/native/wfp_sim.cc),
// which redirects every connection: the per-connection cost of the WFP path
// (lookup, two queries, records set before connect). Goal: transparent /
// upstream connections/s >= 0.9. Both again with --relay streams, the
// JavaScript relay: issue 28 asks each to be ahead with its default (the
// native relay) in the same run.
// --quick: small counts and one run, judging nothing (CI).
// --only=PART[,PART]: only the proxies whose names contain one of the parts.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { configDir, killAllGroups, launchGroup, ownerRedirect, redsocksConfig, removeConfigDir, startUpstream, stopGroup, type UpstreamKind } from './relay-upstreams';
import { freePort } from './ports';

const root = join(__dirname, '..');
const logs = join(root, 'dist-bench', 'relay-logs');
const quick = process.argv.includes('--quick');
const windows = process.argv.includes('--windows');
const NAMESPACE = 'wfp-redirect-bench';
const HOST = '127.0.0.1';
const MARK = 0x5750;
const cores = os.availableParallelism();

const SCALE = quick
  ? { runs: 1, bytes: 16 * 2 ** 20, connections: 300, warmupConnections: 50 }
  : windows
    ? { runs: 3, bytes: 64 * 2 ** 20, connections: 1_000, warmupConnections: 100 }
    : { runs: 3, bytes: 256 * 2 ** 20, connections: 5_000, warmupConnections: 500 };
const IN_FLIGHT = 32;

interface Figures {
  mbps1: number;
  mbps8: number;
  perSecond: number;
  p50: number;
  p99: number;
}

interface Contender {
  name: string;
  /** Starts the proxy towards the server's port (and the upstream's, when it `needs` one); resolves once it accepts, to the port it listens on. */
  start(serverPort: number, upstreamPort?: number): Promise<{ port: number; stop(): Promise<void> }>;
  /**
   * A transparent proxy: the load dials the server itself and a rule, set up
   * around the measurement, sends its connections to the proxy; with
   * `loadUid`, the load runs as that user (the rule matches on it).
   */
  redirect?: { before(serverPort: number, proxyPort: number): void; after(): void; loadUid?: number };
  /** The upstream proxy this one relays through, started once for the whole run. */
  needs?: UpstreamKind;
  /** False for a relay that cannot carry a half-close: the bulk streams then tell the sink their length (bench/relay-load.ts). */
  halfClose?: boolean;
}

const children = new Set<ChildProcess>();

/** Starts a process, its output into `log` (a file: node.exe under Wine cannot write to a pipe). */
function launch(command: string, args: string[], log: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
  const fd = openSync(log, 'w');
  const child = spawn(command, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
  closeSync(fd);
  child.once('exit', (code, signal) => {
    children.delete(child);
    if (!child.killed) process.stderr.write(`relay: ${command} ${args[0] ?? ''} exited (${code ?? signal}); its output is in ${log}\n`);
  });
  children.add(child);
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** Resolves once `port` accepts a connection (which it closes at once); throws after `ms` or once `child` has exited. */
async function accepting(port: number, ms: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${child.spawnargs.join(' ')} exited before it accepted on port ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, HOST, () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing accepted on port ${port} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function found(command: string): boolean {
  return !spawnSync(command, ['-v'], { stdio: 'ignore' }).error;
}

/** A contender that is one process listening on a port chosen for it. */
function processContender(
  name: string,
  command: (port: number, serverPort: number, upstreamPort: number) => { file: string; args: string[]; env?: NodeJS.ProcessEnv },
  readyMs = 10_000,
): Contender {
  return {
    name,
    async start(serverPort, upstreamPort = 0) {
      const port = await freePort(HOST);
      const { file, args, env } = command(port, serverPort, upstreamPort);
      const child = launch(file, args, join(logs, `${name.replace(/[^\w]+/g, '-')}.log`), env);
      await accepting(port, readyMs, child);
      return { port, stop: () => stopChild(child) };
    },
  };
}

const cli = join(root, 'bin', 'wfp-redirect-proxy');
const nodePipe = join(root, 'dist-bench', 'node-pipe-proxy.js');

function haproxy(threads: number): Contender {
  return processContender(`HAProxy, ${threads} thread${threads > 1 ? 's' : ''}`, (port, serverPort) => {
    const config = join(logs, `haproxy-${threads}.cfg`);
    writeFileSync(
      config,
      [
        'global',
        `  nbthread ${threads}`,
        '  maxconn 4096',
        'defaults',
        '  mode tcp',
        '  timeout connect 10s',
        '  timeout client 300s',
        '  timeout server 300s',
        'listen relay',
        `  bind ${HOST}:${port}`,
        `  server upstream ${HOST}:${serverPort}`,
        '',
      ].join('\n'),
    );
    return { file: 'haproxy', args: ['-db', '-f', config] };
  });
}

/**
 * 1,000 rules by address and port (and, `byProcess`, by process), none
 * matching the benchmark's loopback connections. No `domain` rules: they
 * would turn sniffing on in the rules-only row too; the row with --sniff
 * measures it.
 */
function thousandRules(byProcess: boolean): object {
  const rules = Array.from({ length: 1000 }, (_, i) => {
    switch (i % 3) {
      case 0: return { cidr: [`10.${i % 250}.${(i >> 8) % 250}.0/24`, `fd00:${i.toString(16)}::/32`], action: 'block' };
      // Rules that name a process make the proxy look up each connection's: only in the row that measures that.
      case 1: return byProcess ? { process: [`app${i}`, `/opt/app${i}/bin/app`], via: 'corp' } : { cidr: `192.0.2.${i % 250}/32`, port: i, via: 'corp' };
      default: return { cidr: '127.0.0.0/8', port: [i, `${20000 + i}-${20000 + i}`], action: 'block' };
    }
  });
  return { upstreams: { corp: 'socks5://192.0.2.1:1080' }, rules, default: 'direct' };
}

const STREAMS_ROW = 'wfp-redirect-proxy --upstream --relay streams';
const RULES_ROW = 'wfp-redirect-proxy --transparent --config (1,000 rules)';
const KNOWN_ROW = 'wfp-redirect-proxy --transparent --config (1,000 rules, 333 by process) --sniff --process';

/** An iptables REDIRECT of the load's connections to the proxy, for the time of one run; the proxy's own connections carry the mark and pass. */
function markedRedirect(): NonNullable<Contender['redirect']> {
  let rule: string[] = [];
  return {
    before(serverPort, proxyPort) {
      rule = ['OUTPUT', '-p', 'tcp', '-d', HOST, '--dport', String(serverPort), '-m', 'mark', '!', '--mark', String(MARK), '-j', 'REDIRECT', '--to-ports', String(proxyPort)];
      execFileSync('iptables', ['-t', 'nat', '-A', ...rule]);
    },
    after() {
      execFileSync('iptables', ['-t', 'nat', '-D', ...rule]);
    },
  };
}

/** The Linux contenders; `transparent` when the iptables REDIRECT can be set up here (inside the namespace). */
function linuxContenders(transparent: boolean): Contender[] {
  const node = process.execPath;
  const upstreamCli = (name: string, extra: string[]) =>
    processContender(name, (port, serverPort) => ({ file: node, args: [cli, '--listen', `${HOST}:${port}`, '--upstream', `${HOST}:${serverPort}`, ...extra] }));
  const list: Contender[] = [
    // The default (--relay auto): accepted, connected and relayed in the addon, as nothing is decided per connection (lib/proxy/native-accept.ts).
    upstreamCli('wfp-redirect-proxy --upstream', []),
    // The JavaScript relay this replaced (the default before issue 28), for the p99 goal and the record.
    upstreamCli(STREAMS_ROW, ['--relay', 'streams']),
  ];
  if (transparent) {
    const config = join(logs, 'rules-1000.json');
    const processConfig = join(logs, 'rules-1000-process.json');
    mkdirSync(logs, { recursive: true });
    writeFileSync(config, JSON.stringify(thousandRules(false)));
    writeFileSync(processConfig, JSON.stringify(thousandRules(true)));
    const transparentCli = (name: string, extra: string[]): Contender => ({
      ...processContender(name, (port) => ({ file: node, args: [cli, '--listen', `${HOST}:${port}`, '--transparent', '--mark', String(MARK), ...extra] })),
      redirect: markedRedirect(),
    });
    list.push(transparentCli('wfp-redirect-proxy --transparent', []));
    // The same, deciding each connection by 1,000 rules (none of which matches, so every candidate is tried: the default decides).
    list.push(transparentCli(RULES_ROW, ['--config', config]));
    // And with what issue 26 asks to measure together: each connection sniffed and its process looked up too.
    list.push(transparentCli(KNOWN_ROW, ['--config', processConfig, '--sniff', '--process']));
  }
  list.push(
    upstreamCli(`wfp-redirect-proxy --upstream --workers auto (${cores})`, ['--workers', 'auto']),
    processContender('Node net pipe proxy', (port, serverPort) => ({ file: node, args: [nodePipe, HOST, String(port), HOST, String(serverPort)] })),
  );
  if (found('socat')) {
    list.push(
      processContender('socat (fork)', (port, serverPort) => ({
        file: 'socat',
        args: [`TCP-LISTEN:${port},bind=${HOST},fork,reuseaddr,backlog=1024`, `TCP:${HOST}:${serverPort}`],
      })),
    );
  }
  if (found('haproxy')) list.push(haproxy(1), ...(cores > 1 ? [haproxy(cores)] : []));
  if (transparent) list.push(...upstreamContenders());
  return list;
}

/** redsocks towards the upstream on the port it is given, from a config file in a temp folder, stopped with it. */
function redsocks(name: string, type: 'socks5' | 'http-connect'): Contender {
  return {
    name,
    async start(_serverPort, upstreamPort = 0) {
      const port = await freePort(HOST);
      const dir = configDir('redsocks');
      const config = join(dir, 'redsocks.conf');
      writeFileSync(config, redsocksConfig(HOST, port, upstreamPort, type));
      const child = launchGroup('redsocks', ['-c', config], join(logs, `redsocks-${type}.log`));
      const stop = async () => {
        await stopGroup(child);
        removeConfigDir(dir);
      };
      try {
        await accepting(port, 10_000, child);
      } catch (error) {
        await stop();
        throw error;
      }
      return { port, stop };
    },
    redirect: ownerRedirect(HOST),
    needs: type === 'socks5' ? 'dante' : 'tinyproxy',
    ...(type === 'socks5' ? {} : { halfClose: false }),
  };
}

/** The rows through an upstream (namespace only: they need the REDIRECT); what is not installed is said and left out. */
function upstreamContenders(): Contender[] {
  const node = process.execPath;
  const list: Contender[] = [];
  const cliVia = (name: string, scheme: string, needs: UpstreamKind): Contender => ({
    ...processContender(name, (port, _serverPort, upstreamPort) => ({
      file: node,
      args: [cli, '--listen', `${HOST}:${port}`, '--transparent', '--via', `${scheme}://${HOST}:${upstreamPort}`],
    })),
    redirect: ownerRedirect(HOST),
    needs,
    ...(needs === 'tinyproxy' ? { halfClose: false } : {}),
  });
  const missing = (tool: string, pkg: string) => (found(tool) ? false : (console.log(`relay: NOT measuring through ${pkg}: ${tool} is not installed (apt-get install ${pkg})`), true));
  if (!missing('redsocks', 'redsocks')) {
    if (!missing('danted', 'dante-server')) list.push(cliVia('dante: wfp-redirect-proxy --transparent --via socks5://', 'socks5', 'dante'), redsocks('dante: redsocks (socks5)', 'socks5'));
    if (!missing('tinyproxy', 'tinyproxy')) list.push(cliVia('tinyproxy: wfp-redirect-proxy --transparent --via http://', 'http', 'tinyproxy'), redsocks('tinyproxy: redsocks (http-connect)', 'http-connect'));
  }
  return list;
}

/** The Windows contenders: node.exe under Wine 10 (scripts/wine.js), the simulated service preloaded in each. */
function windowsContenders(): Contender[] {
  const { officialNode, WIN_VERSIONS } = require(join(root, 'scripts', 'node-builds.js'));
  const { windowsCommand } = require(join(root, 'scripts', 'wine.js'));
  const exe = officialNode('win32', WIN_VERSIONS[WIN_VERSIONS.length - 1]);
  // Paths relative to the project, where Wine's node.exe starts (scripts/wine.js).
  const preload = './dist-bench/wfp-sim-every-connection.js';
  const cliMain = 'bin/wfp-redirect-proxy';
  const wine = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const [file, argv] = windowsCommand(exe, args, env);
    return { file, args: argv };
  };
  const cli = (relay: string[]) => [
    processContender(
      `node.exe: wfp-redirect-proxy --upstream${relay.length ? ' ' + relay.join(' ') : ''}`,
      (port, serverPort) => wine(['--require', preload, cliMain, '--listen', `${HOST}:${port}`, '--upstream', `${HOST}:${serverPort}`, ...relay]),
      60_000,
    ),
    processContender(
      `node.exe: wfp-redirect-proxy --transparent (simulated WFP)${relay.length ? ' ' + relay.join(' ') : ''}`,
      (port, serverPort) =>
        wine(['--require', preload, cliMain, '--listen', `${HOST}:${port}`, '--transparent', ...relay], {
          WFP_SIM_REDIRECT_EVERY_CONNECTION_TO: `${HOST}:${serverPort}`,
        }),
      60_000,
    ),
  ];
  return [
    ...cli([]),
    ...cli(['--relay', 'streams']),
    processContender('node.exe: Node net pipe proxy', (port, serverPort) => wine(['dist-bench/node-pipe-proxy.js', HOST, String(port), HOST, String(serverPort)]), 60_000),
  ];
}

async function measure(port: number, warmup: boolean, uid?: number, halfClose?: boolean): Promise<Figures> {
  const plan = warmup
    ? { host: HOST, port, halfClose, bulk: [{ streams: 1, bytes: SCALE.bytes / 8 }], connections: { count: SCALE.warmupConnections, inFlight: IN_FLIGHT } }
    : {
        host: HOST,
        port,
        halfClose,
        bulk: [
          { streams: 1, bytes: SCALE.bytes },
          { streams: 8, bytes: SCALE.bytes },
        ],
        connections: { count: SCALE.connections, inFlight: IN_FLIGHT },
      };
  const run = spawn(process.execPath, [join(__dirname, 'relay-load.js'), JSON.stringify(plan)], { stdio: ['ignore', 'pipe', 'inherit'], ...(uid === undefined ? {} : { uid, gid: uid }) });
  let out = '';
  run.stdout!.on('data', (chunk) => (out += chunk));
  const [code] = await once(run, 'exit');
  if (code !== 0) throw new Error(`the load exited ${code}`);
  const result = JSON.parse(out) as { mbps: number[]; perSecond: number; p50: number; p99: number };
  return { mbps1: result.mbps[0], mbps8: result.mbps[1] ?? NaN, perSecond: result.perSecond, p50: result.p50, p99: result.p99 };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
}

/** The Linux run outside a namespace of its own re-runs itself inside one when it can, for the --transparent row. */
function namespaceUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of ['ip', 'iptables']) if (spawnSync(tool, ['-V'], { stdio: 'ignore' }).error) return `${tool} is not installed (apt-get install iproute2 iptables)`;
  return undefined;
}

function inNamespace(): number {
  spawnSync('ip', ['netns', 'del', NAMESPACE], { stdio: 'ignore' });
  execFileSync('ip', ['netns', 'add', NAMESPACE]);
  try {
    execFileSync('ip', ['netns', 'exec', NAMESPACE, 'ip', 'link', 'set', 'lo', 'up']);
    // dante binds each outbound socket to port 0 before connecting, and such a bind skips every port a
    // TIME_WAIT holds: the default range (28k ports) ran out within a full run. This namespace's own setting.
    execFileSync('ip', ['netns', 'exec', NAMESPACE, 'sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65535']);
    const run = spawnSync('ip', ['netns', 'exec', NAMESPACE, process.execPath, ...process.execArgv, __filename, '--in-namespace', ...process.argv.slice(2)], { stdio: 'inherit' });
    return run.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', NAMESPACE]);
  }
}

const fixed = (n: number, digits = 0) => n.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });

async function main(): Promise<void> {
  if (!windows && !process.argv.includes('--in-namespace')) {
    const why = namespaceUnavailable();
    if (why === undefined) process.exit(inNamespace());
    console.log(`relay: NOT measuring --transparent, nor the rows through an upstream proxy with redsocks (${why}: they need an iptables REDIRECT in a network namespace of its own)`);
  }
  const transparent = process.argv.includes('--in-namespace');
  const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length).split(',');
  const contenders = (windows ? windowsContenders() : linuxContenders(transparent)).filter((c) => !only || only.some((part) => c.name.includes(part)));
  if (!windows) {
    for (const [tool, pkg] of [['socat', 'socat'], ['haproxy', 'haproxy']]) {
      if (!found(tool)) console.log(`relay: NOT measuring ${tool}: not installed (apt-get install ${pkg})`);
    }
  }
  mkdirSync(logs, { recursive: true });
  const serverPort = await freePort(HOST);
  const server = launch(process.execPath, [join(__dirname, 'relay-server.js'), HOST, String(serverPort)], join(logs, 'server.log'));
  await accepting(serverPort, 10_000, server);
  const upstreams = new Map<UpstreamKind, { port: number; stop(): Promise<void> }>();
  for (const kind of new Set(contenders.flatMap((c) => (c.needs ? [c.needs] : [])))) {
    upstreams.set(kind, await startUpstream(kind, HOST, await freePort(HOST), serverPort, logs, (port, child) => accepting(port, 10_000, child)));
  }

  const figures = new Map<string, Figures[]>(contenders.map((c) => [c.name, []]));
  for (let run = 1; run <= SCALE.runs; run++) {
    for (const contender of contenders) {
      const started = await contender.start(serverPort, contender.needs && upstreams.get(contender.needs)!.port);
      contender.redirect?.before(serverPort, started.port);
      const dial = contender.redirect ? serverPort : started.port;
      const uid = contender.redirect?.loadUid;
      try {
        await measure(dial, true, uid, contender.halfClose);
        const result = await measure(dial, false, uid, contender.halfClose);
        figures.get(contender.name)!.push(result);
        process.stderr.write(`relay: run ${run}/${SCALE.runs} ${contender.name}: ${fixed(result.mbps1)} / ${fixed(result.mbps8)} MB/s, ${fixed(result.perSecond)} conn/s\n`);
      } finally {
        contender.redirect?.after();
        await started.stop();
      }
    }
  }
  for (const upstream of upstreams.values()) await upstream.stop();
  await stopChild(server);

  const rows = contenders.map((c) => {
    const list = figures.get(c.name)!;
    const pick = (key: keyof Figures) => median(list.map((f) => f[key]));
    return { name: c.name, mbps1: pick('mbps1'), mbps8: pick('mbps8'), perSecond: pick('perSecond'), p50: pick('p50'), p99: pick('p99'), runs: list };
  });
  report(rows);
}

type Row = Figures & { name: string; runs: Figures[] };

function report(rows: Row[]): void {
  const machine = {
    platform: `${process.platform} ${os.release()}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores,
    node: process.version,
    proxies: windows ? 'Windows node.exe under Wine 10; load and server native' : 'all native',
  };
  const byName = (prefix: string) => rows.find((r) => r.name.startsWith(prefix));
  const floor = windows ? byName('node.exe: Node net pipe') : byName('Node net pipe');
  const ha1 = byName('HAProxy, 1 thread');
  const haN = rows.find((r) => r.name.startsWith('HAProxy') && r !== ha1);
  const ratio = (row: Row, against: Row | undefined) =>
    against ? `${(row.mbps1 / against.mbps1).toFixed(2)} / ${(row.mbps8 / against.mbps8).toFixed(2)} / ${(row.perSecond / against.perSecond).toFixed(2)}` : 'n/a';
  console.log(
    `\nrelay speed${quick ? ' (quick)' : ''}: ${machine.platform}, ${machine.cpu}, ${cores} cores, Node ${machine.node}; ${machine.proxies}; ` +
      `median of ${SCALE.runs} run(s); bulk ${SCALE.bytes / 2 ** 20} MiB, ${fixed(SCALE.connections)} echo connections with ${IN_FLIGHT} in flight`,
  );
  console.log('| proxy | 1 stream MB/s | 8 streams MB/s | connections/s | p50 ms | p99 ms | vs Node pipe (1 / 8 / conn) | vs HAProxy 1 thread |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const row of rows) {
    console.log(
      `| ${row.name} | ${fixed(row.mbps1)} | ${fixed(row.mbps8)} | ${fixed(row.perSecond)} | ${fixed(row.p50, 2)} | ${fixed(row.p99, 2)} | ${ratio(row, floor)} | ${ratio(row, ha1)} |`,
    );
  }
  const verdict = (met: boolean) => (quick ? 'not judged in a quick run' : met ? 'met' : 'MISSED');
  const goals: Record<string, unknown> = {};
  const exactly = (name: string) => rows.find((r) => r.name === name);
  if (windows) {
    const upstream = exactly('node.exe: wfp-redirect-proxy --upstream');
    const transparentRow = byName('node.exe: wfp-redirect-proxy --transparent');
    if (upstream && transparentRow) {
      const value = transparentRow.perSecond / upstream.perSecond;
      goals.transparentOverUpstream = value;
      console.log(`--transparent / --upstream connections/s = ${value.toFixed(2)} (goal >= 0.9: ${verdict(value >= 0.9)})`);
    }
    // Issue 28 under Wine: each with the native relay (the default) against itself on JavaScript streams, in the same run.
    for (const name of ['node.exe: wfp-redirect-proxy --upstream', 'node.exe: wfp-redirect-proxy --transparent (simulated WFP)']) {
      const native = exactly(name);
      const streams = exactly(`${name} --relay streams`);
      if (!native || !streams) continue;
      const against = { mbps1: native.mbps1 / streams.mbps1, mbps8: native.mbps8 / streams.mbps8, perSecond: native.perSecond / streams.perSecond };
      goals[`nativeOverStreams ${name.replace('node.exe: wfp-redirect-proxy ', '')}`] = against;
      console.log(
        `${name.replace('node.exe: wfp-redirect-proxy ', '')}, native relay / --relay streams: 1 stream ${against.mbps1.toFixed(2)}, ` +
          `8 streams ${against.mbps8.toFixed(2)}, connections/s ${against.perSecond.toFixed(2)} (aim, each ahead: ${quick ? 'not judged in a quick run' : Math.min(against.mbps1, against.mbps8, against.perSecond) >= 1 ? 'reached' : 'not reached'})`,
      );
    }
  } else {
    const upstream = exactly('wfp-redirect-proxy --upstream');
    const workers = byName('wfp-redirect-proxy --upstream --workers');
    if (upstream && floor) {
      const lowest = Math.min(upstream.mbps1 / floor.mbps1, upstream.mbps8 / floor.mbps8, upstream.perSecond / floor.perSecond);
      goals.upstreamOverNodePipeLowest = lowest;
      console.log(`--upstream / Node pipe, lowest of the three = ${lowest.toFixed(2)} (goal >= 1.0: ${verdict(lowest >= 1)})`);
    }
    // Issue 28: at least HAProxy 1 thread on bytes, at least the pipe on connections/s, p99 no worse than the JS relay's in the same run.
    const streams = exactly(STREAMS_ROW);
    if (upstream && ha1 && floor && streams) {
      const issue28 = { mbps1: upstream.mbps1 / ha1.mbps1, mbps8: upstream.mbps8 / ha1.mbps8, perSecond: upstream.perSecond / floor.perSecond, p99: upstream.p99 / streams.p99 };
      goals.nativeRelay = issue28;
      const met = issue28.mbps1 >= 1 && issue28.mbps8 >= 1 && issue28.perSecond >= 1 && issue28.p99 <= 1;
      console.log(
        `--upstream / HAProxy 1 thread: 1 stream ${issue28.mbps1.toFixed(2)}, 8 streams ${issue28.mbps8.toFixed(2)}; / Node pipe connections/s ${issue28.perSecond.toFixed(2)}; ` +
          `p99 / --relay streams ${issue28.p99.toFixed(2)} (goal: >= 1.0, >= 1.0, >= 1.0, <= 1.0: ${verdict(met)})`,
      );
    }
    const transparentRow = byName('wfp-redirect-proxy --transparent');
    if (upstream && transparentRow) {
      goals.transparentOverUpstream = transparentRow.perSecond / upstream.perSecond;
      console.log(`--transparent / --upstream connections/s = ${(transparentRow.perSecond / upstream.perSecond).toFixed(2)} (not a goal: netfilter's lookup, on Linux)`);
    }
    for (const [upstream, redsocksRow] of [
      ['dante', 'dante: redsocks'],
      ['tinyproxy', 'tinyproxy: redsocks'],
    ]) {
      const ours = byName(`${upstream}: wfp-redirect-proxy`);
      const theirs = byName(redsocksRow);
      if (!ours || !theirs) continue;
      const against = {
        mbps1: ours.mbps1 / theirs.mbps1,
        mbps8: ours.mbps8 / theirs.mbps8,
        perSecond: ours.perSecond / theirs.perSecond,
        p50: theirs.p50 / ours.p50,
        p99: theirs.p99 / ours.p99,
      };
      const lowest = Math.min(against.mbps1, against.mbps8, against.perSecond);
      goals[`${upstream}ViaOverRedsocks`] = against;
      console.log(
        `through ${upstream}, wfp-redirect-proxy --via / redsocks: 1 stream ${against.mbps1.toFixed(2)}, 8 streams ${against.mbps8.toFixed(2)}, ` +
          `connections/s ${against.perSecond.toFixed(2)}, p50 ${against.p50.toFixed(2)}x as fast, p99 ${against.p99.toFixed(2)}x ` +
          `(goal, the three throughput figures >= 1.0: ${verdict(lowest >= 1)})`,
      );
    }
    const plain = exactly('wfp-redirect-proxy --transparent');
    for (const [goal, name] of [['rulesOverTransparent', RULES_ROW], ['knownOverTransparent', KNOWN_ROW]] as const) {
      const row = exactly(name);
      if (!plain || !row) continue;
      const value = row.perSecond / plain.perSecond;
      goals[goal] = value;
      console.log(`${name.replace('wfp-redirect-proxy ', '')} / --transparent connections/s = ${value.toFixed(2)} (aim: >= 0.95)`);
    }
    if (workers && haN) {
      const conn = workers.perSecond / haN.perSecond;
      const bulk = workers.mbps8 / haN.mbps8;
      goals.workersOverHaproxy = { connections: conn, mbps8: bulk };
      console.log(
        `--workers auto / ${haN.name}: connections/s ${conn.toFixed(2)}, 8 streams ${bulk.toFixed(2)} ` +
          `(aim >= 1.0: ${quick ? 'not judged in a quick run' : conn >= 1 && bulk >= 1 ? 'reached' : 'not reached'})`,
      );
    }
  }
  const file = quick ? join(root, 'dist-bench', `results-relay${windows ? '-win32' : ''}-quick.json`) : join(root, 'bench', `results-relay${windows ? '-win32' : ''}.json`);
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), quick, machine, scale: SCALE, inFlight: IN_FLIGHT, rows, goals }, null, 2)}\n`);
  console.log(`written to ${file}`);
}

const cleanUp = () => {
  for (const child of children) child.kill('SIGKILL');
  killAllGroups();
};
process.on('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
main().catch((error) => {
  console.error(error);
  // Exit, not just set the code: the server, the upstreams and the proxies would keep this process (and CI) waiting; 'exit' kills them.
  process.exit(1);
});
