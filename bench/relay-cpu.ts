// The relay's own CPU for a fixed amount of work, beside HAProxy's (Linux):
//   node dist-bench/relay-cpu.js [--runs=N] [--gib=G] [--connections=N]
// The MB/s of bench/relay.ts are the whole machine's: on a small machine the
// load generator and the sink share the cores with the proxy and bound the
// bulk rows as much as the proxy does. This measures the proxy process alone:
// the CPU time (user + system, from /proc/PID/stat) it spent on G GiB over 8
// streams, over 1 stream, and on N echo connections (32 in flight), through
// the same load and server as bench/relay.ts, runs interleaved. The CLI runs
// as bench/relay.ts runs it, writing its default log line per connection (to
// /dev/null here); HAProxy's configuration logs nothing. Not part of
// `npm run bench`; its figures are in docs/benchmarks.md.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { freePort } from './ports';

const root = join(__dirname, '..');
const HOST = '127.0.0.1';
const argument = (name: string, fallback: number) => Number(process.argv.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const RUNS = argument('runs', 2);
const BYTES = argument('gib', 2) * 2 ** 30;
const CONNECTIONS = argument('connections', 4000);
// The clock ticks /proc/PID/stat counts in (USER_HZ).
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
// After the load has ended, the proxy still closes its last connections: counted too.
const SETTLE_MS = 300;

interface Proxy {
  name: string;
  command(port: number, serverPort: number): [string, string[]];
}

const cli = join(root, 'bin', 'wfp-redirect-proxy');
const PROXIES: Proxy[] = [
  { name: 'wfp-redirect-proxy --upstream', command: (port, server) => [process.execPath, [cli, '--listen', `${HOST}:${port}`, '--upstream', `${HOST}:${server}`]] },
  { name: 'wfp-redirect-proxy --upstream --relay streams', command: (port, server) => [process.execPath, [cli, '--listen', `${HOST}:${port}`, '--upstream', `${HOST}:${server}`, '--relay', 'streams']] },
  { name: 'HAProxy, 1 thread', command: haproxy },
];

/** HAProxy's command, with the configuration bench/relay.ts gives it. */
function haproxy(port: number, serverPort: number): [string, string[]] {
  const dir = join(root, 'dist-bench', 'relay-logs');
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'haproxy-cpu.cfg');
  const lines = ['global', '  nbthread 1', '  maxconn 4096', 'defaults', '  mode tcp', '  timeout connect 10s', '  timeout client 300s', '  timeout server 300s', 'listen relay', `  bind ${HOST}:${port}`, `  server upstream ${HOST}:${serverPort}`, ''];
  writeFileSync(config, lines.join('\n'));
  return ['haproxy', ['-db', '-f', config]];
}

/** CPU seconds (user + system) process `pid` has used so far. */
function cpuSeconds(pid: number): number {
  // The fields after the command's closing parenthesis (the command may hold one): utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

async function accepting(port: number, child: ChildProcess): Promise<void> {
  for (let tries = 0; tries < 100; tries++) {
    if (child.exitCode !== null) throw new Error(`the proxy exited (${child.exitCode}) before it accepted`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, HOST, () => resolve(true)).on('error', () => resolve(false));
      socket.once('connect', () => socket.destroy());
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the proxy did not accept within 10 s');
}

type Work = { name: string; plan: { bulk: Array<{ streams: number; bytes: number }>; connections: { count: number; inFlight: number } } };
const WORK: Work[] = [
  { name: '8 streams', plan: { bulk: [{ streams: 8, bytes: BYTES }], connections: { count: 0, inFlight: 1 } } },
  { name: '1 stream', plan: { bulk: [{ streams: 1, bytes: BYTES }], connections: { count: 0, inFlight: 1 } } },
  { name: 'connections', plan: { bulk: [], connections: { count: CONNECTIONS, inFlight: 32 } } },
];

/** One run of `work` through `proxy`: the proxy's CPU seconds and what the load measured. */
async function run(proxy: Proxy, work: Work, serverPort: number): Promise<{ cpu: number; figure: number }> {
  const port = await freePort(HOST);
  const [file, args] = proxy.command(port, serverPort);
  // Its stderr (start and stop lines) is kept, and said only when the run fails.
  const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  try {
    await accepting(port, child).catch((error: Error) => {
      throw new Error(`${proxy.name}: ${error.message}\n${stderr}`);
    });
    const before = cpuSeconds(child.pid!);
    const load = spawnSync(process.execPath, [join(__dirname, 'relay-load.js'), JSON.stringify({ host: HOST, port, ...work.plan })], { encoding: 'utf8' });
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const cpu = cpuSeconds(child.pid!) - before;
    if (load.status !== 0) throw new Error(`the load failed: ${load.stderr}`);
    const result = JSON.parse(load.stdout) as { mbps: number[]; perSecond: number };
    return { cpu, figure: work.plan.bulk.length ? result.mbps[0] : result.perSecond };
  } finally {
    // A proxy that exited already has said so ('exit' will not come again).
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  }
}

async function main(): Promise<void> {
  if (process.platform !== 'linux') throw new Error('relay-cpu reads /proc: Linux only');
  const proxies = PROXIES.filter((proxy) => proxy.name !== 'HAProxy, 1 thread' || spawnSync('haproxy', ['-v']).status === 0);
  if (proxies.length < PROXIES.length) console.log('relay-cpu: HAProxy is not installed: its rows are left out');
  const server = spawn(process.execPath, [join(__dirname, 'relay-server.js'), HOST, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(server.stdout!, 'data')) as [Buffer];
  const serverPort = (JSON.parse(line.toString()) as { port: number }).port;
  const results = new Map<string, Array<{ cpu: number; figure: number }>>();
  try {
    for (let round = 0; round < RUNS; round++) {
      for (const work of WORK) {
        for (const proxy of proxies) {
          const result = await run(proxy, work, serverPort);
          const key = `${proxy.name}|${work.name}`;
          results.set(key, [...(results.get(key) ?? []), result]);
          console.log(`relay-cpu: run ${round + 1}/${RUNS} ${proxy.name}, ${work.name}: ${result.cpu.toFixed(2)} s CPU, ${Math.round(result.figure)} ${work.plan.bulk.length ? 'MB/s' : 'conn/s'}`);
        }
      }
    }
  } finally {
    server.kill();
  }
  console.log(`\nthe proxy's own CPU (user + system), ${BYTES / 2 ** 30} GiB per bulk run, ${CONNECTIONS} echo connections; each run's figure, in run order`);
  console.log(`| proxy | ${WORK.map((work) => `CPU s, ${work.name}`).join(' | ')} | ${WORK.map((work) => (work.plan.bulk.length ? `MB/s, ${work.name}` : 'connections/s')).join(' | ')} |`);
  console.log(`| --- |${' ---: |'.repeat(WORK.length * 2)}`);
  for (const proxy of proxies) {
    const of = (work: Work) => results.get(`${proxy.name}|${work.name}`)!;
    const cpu = WORK.map((work) => of(work).map((r) => r.cpu.toFixed(2)).join(', '));
    const figures = WORK.map((work) => of(work).map((r) => Math.round(r.figure).toLocaleString('en-US')).join(', '));
    console.log(`| ${proxy.name} | ${cpu.join(' | ')} | ${figures.join(' | ')} |`);
  }
}

main().catch((error: Error) => {
  console.error(`relay-cpu: ${error.message}`);
  process.exitCode = 1;
});
