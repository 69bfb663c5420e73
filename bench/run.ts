// npm run bench: the cost of this package per connection, measured.
//   1. lookup: resolving the OS socket of a just-accepted connection with 10,
//      1,000 and 10,000 other connections open (goal: flat, t(10k)/t(10) <= 1.5)
//   2. call overhead: ns per query against a do-nothing Node-API call (the
//      floor) and, on Windows, a raw WSAIoctl loop in C (goal: sync <= 2x raw)
//   3. memory: RSS and handles after 1,000,000 queries and 100,000
//      connectRedirected round trips (goal: < 5 MB growth, no handle growth)
// Each figure is a median over repeated runs in this one process.
// --quick: small counts, for CI, so this code cannot rot; writes under dist-bench/.
// Under Wine (npm run bench:win32) the counts are smaller too; the output says which.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { connectRedirected, getSocketHandle, queryRedirectRecords, queryRedirectRecordsSync } from 'wfp-redirect';
// The addon's own diagnostics: how far each lookup searched.

const quick = process.argv.includes('--quick');
// A quick run's counts are too small to say anything about a goal.
const verdict = (met: boolean | null) => (quick ? 'not judged in a quick run' : met ? 'met' : 'MISSED');
// Under Wine every socket call goes through wineserver and costs ~100x more:
// the same figures, at counts that finish in minutes.
const wine = process.env.WFP_REDIRECT_UNDER_WINE === '1';
const SCALE = quick
  ? { sizes: [10, 200], samples: 30, warmup: 50, iterations: 5_000, queries: 20_000, roundTrips: 1_000 }
  : wine
    ? { sizes: [10, 1000, 5000], samples: 100, warmup: 200, iterations: 10_000, queries: 100_000, roundTrips: 10_000 }
    : { sizes: [10, 1000, 10000], samples: 300, warmup: 500, iterations: 100_000, queries: 1_000_000, roundTrips: 100_000 };
const root = join(__dirname, '..');
const bench = require(
  process.platform === 'win32'
    ? join(root, 'bench', 'native', 'build-win32', 'wfp_bench.node')
    : join(root, 'bench', 'native', 'build', 'Release', 'wfp_bench.node'),
) as { noop(): void; rawIoctlLoop(socket: number, iterations: number): number | null };
// The socket probe of the test addon (test/native/socket_probe.h): the production
// lookup with its statistics, which the production addon does not export.
const probe = require(
  process.platform === 'win32'
    ? join(root, 'test', 'native', 'build-win32', 'wfp_conformance.node')
    : join(root, 'test', 'native', 'build', 'Release', 'wfp_conformance.node'),
) as {
  describeSocket(osSocket: number): unknown;
  findTcpSocket(localAddress: string, localPort: number, remoteAddress: string, remotePort: number): { socketsChecked: number };
};
/** How many sockets' addresses the lookup of `socket` asks the OS for. */
const socketsCheckedFor = (socket: net.Socket) =>
  probe.findTcpSocket(socket.localAddress!, socket.localPort!, socket.remoteAddress!, socket.remotePort!).socketsChecked;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc (npm run bench does)');

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function nowNs(): number {
  return Number(process.hrtime.bigint());
}

class Pairs {
  readonly server = net.createServer();
  readonly sockets: net.Socket[] = [];
  private accepted: net.Socket[] = [];
  private waiting: Array<(s: net.Socket) => void> = [];

  async listen(): Promise<void> {
    this.server.on('connection', (socket) => {
      socket.on('error', () => {});
      const waiter = this.waiting.shift();
      if (waiter) waiter(socket);
      else this.accepted.push(socket);
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
  }

  async open(): Promise<{ accepted: net.Socket; client: net.Socket }> {
    const client = net.connect((this.server.address() as net.AddressInfo).port, '127.0.0.1');
    client.on('error', () => {});
    const accepted = this.accepted.shift() ?? (await new Promise<net.Socket>((resolve) => this.waiting.push(resolve)));
    await (client.connecting ? once(client, 'connect') : Promise.resolve());
    this.sockets.push(accepted, client);
    return { accepted, client };
  }
}

/** Opens `count` more connections to `port` from a helper process; resolves once they are all accepted here. */
async function connectionsFromAnotherProcess(server: net.Server, count: number): Promise<{ accepted: net.Socket[]; stop(): void }> {
  const accepted: net.Socket[] = [];
  const onConnection = (socket: net.Socket) => {
    socket.on('error', () => {});
    accepted.push(socket);
  };
  server.on('connection', onConnection);
  const child = fork(join(root, 'dist-test', 'fixtures', 'hold-connections.js'), [String((server.address() as net.AddressInfo).port), String(count)]);
  await once(child, 'message');
  while (accepted.length < count) await new Promise((resolve) => setImmediate(resolve));
  server.off('connection', onConnection);
  return {
    accepted,
    stop: () => {
      child.disconnect();
      for (const socket of accepted) socket.destroy();
    },
  };
}

/** One connection to the server, held until its 'connection' listeners have run, then closed. */
async function connectOnce(port: number): Promise<void> {
  const client = net.connect(port, '127.0.0.1');
  client.on('error', () => {});
  await once(client, 'connect');
  await new Promise((resolve) => setImmediate(resolve));
  client.destroy();
}

async function lookupCost() {
  const { sizes, samples } = SCALE;
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const groups: Array<{ accepted: net.Socket[]; stop(): void }> = [];
  let open = 0;
  const rows = [];
  // Warm up (JIT, allocator) before the first figure, or t(10) measures the warm-up.
  const warmup = (socket: net.Socket) => {
    socket.on('error', () => {});
    getSocketHandle(socket);
  };
  server.on('connection', warmup);
  for (let i = 0; i < SCALE.warmup; i++) await connectOnce(port);
  server.off('connection', warmup);
  for (const size of sizes) {
    const group = await connectionsFromAnotherProcess(server, size - open);
    groups.push(group);
    open = size;
    const times: number[] = [];
    const checked: number[] = [];
    const osCalls: number[] = [];
    const measure = (socket: net.Socket) => {
      socket.on('error', () => {});
      const start = nowNs();
      const handle = getSocketHandle(socket);
      times.push(nowNs() - start);
      checked.push(socketsCheckedFor(socket));
      // What the OS alone charges for the two address queries one check makes.
      const before = nowNs();
      probe.describeSocket(handle);
      osCalls.push(nowNs() - before);
    };
    server.prependListener('connection', measure);
    for (let i = 0; i < samples + 20; i++) await connectOnce(port);
    server.off('connection', measure);
    // The oldest connection, never looked up before: the whole queue is walked once, then it is cached.
    const oldest = groups[0].accepted[rows.length];
    const start = nowNs();
    getSocketHandle(oldest);
    const oldestNs = nowNs() - start;
    const oldestChecked = socketsCheckedFor(oldest);
    rows.push({
      open: size,
      medianNs: median(times.slice(20)),
      socketsChecked: median(checked),
      osAddressCallsNs: median(osCalls.slice(20)),
      oldestFirstLookupNs: oldestNs,
      oldestSocketsChecked: oldestChecked,
    });
  }
  for (const group of groups) group.stop();
  server.close();
  const ratio = rows[rows.length - 1].medianNs / rows[0].medianNs;
  return { samples, rows, ratio, goal: 'flat: t(largest) / t(10) <= 1.5', met: ratio <= 1.5 };
}

async function loopNs(iterations: number, body: () => void | Promise<void>, isAsync: boolean): Promise<number> {
  const runs: number[] = [];
  for (let run = 0; run < 5; run++) {
    const start = nowNs();
    if (isAsync) for (let i = 0; i < iterations; i++) await body();
    else for (let i = 0; i < iterations; i++) body();
    runs.push((nowNs() - start) / iterations);
  }
  return median(runs);
}

async function callOverhead() {
  const pairs = new Pairs();
  await pairs.listen();
  const { accepted } = await pairs.open();
  const handle = getSocketHandle(accepted);
  const { iterations } = SCALE;
  const swallow = () => {};
  const floor = await loopNs(iterations, () => bench.noop(), false);
  const cachedLookup = await loopNs(iterations, () => void getSocketHandle(accepted), false);
  const sync = await loopNs(iterations, () => {
    try {
      queryRedirectRecordsSync(accepted);
    } catch {
      // the unsupported-platform path (Linux) or WSAEOPNOTSUPP (Wine)
    }
  }, false);
  const asyncNs = await loopNs(iterations / 2, () => queryRedirectRecords(accepted).then(swallow, swallow), true);
  const rawRuns: number[] = [];
  for (let run = 0; run < 5; run++) {
    const total = bench.rawIoctlLoop(handle, iterations);
    if (total !== null) rawRuns.push(total / iterations);
  }
  const raw = rawRuns.length ? median(rawRuns) : null;
  for (const socket of pairs.sockets) socket.destroy();
  pairs.server.close();
  return {
    iterations,
    path: process.platform === 'win32' ? 'WSAIoctl fails (WSAEOPNOTSUPP under Wine)' : 'ERR_WFP_UNSUPPORTED_PLATFORM after the lookup',
    floorNoopNs: floor,
    getSocketHandleCachedNs: cachedLookup,
    syncNs: sync,
    asyncNs,
    rawWsaIoctlNs: raw,
    syncOverRaw: raw === null ? null : sync / raw,
    goal: 'sync <= 2x the raw WSAIoctl loop (Windows only)',
    met: raw === null ? null : sync / raw <= 2,
  };
}

/** RSS, and what JavaScript holds (heap, external memory, ArrayBuffers), after two GCs, in MB. */
function memoryMb(): { rss: number; js: number } {
  gc!();
  gc!();
  const usage = process.memoryUsage();
  return { rss: usage.rss / 2 ** 20, js: (usage.heapUsed + usage.external) / 2 ** 20 };
}

function activeHandles(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind !== 'Timeout' && kind !== 'Immediate').length;
}

async function memory() {
  const { queries, roundTrips } = SCALE;
  const pairs = new Pairs();
  await pairs.listen();
  const { accepted } = await pairs.open();
  // Four loopback servers, each closing first: the client's ports are not
  // held in TIME_WAIT, so 100,000 connections fit the ephemeral range.
  const servers = await Promise.all(
    ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'].map(async (host) => {
      const server = net.createServer((socket) => {
        socket.on('error', () => {});
        socket.once('data', (data) => socket.end(data));
      });
      server.listen(0, host);
      await once(server, 'listening');
      return { host, port: (server.address() as net.AddressInfo).port, server };
    }),
  );
  const warmup = async (n: number) => {
    for (let i = 0; i < n; i++) await roundTrip(i);
  };
  const roundTrip = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const { host, port } = servers[i % servers.length];
      const socket = connectRedirected({ host, port }, () => socket.write('x'));
      socket.on('data', () => {});
      socket.once('error', reject);
      socket.once('close', () => resolve());
    });
  await warmup(200);
  for (let i = 0; i < 1000; i++) {
    try {
      queryRedirectRecordsSync(accepted);
    } catch {}
  }
  const handlesBefore = activeHandles();
  const before = memoryMb();
  for (let i = 0; i < queries; i++) {
    try {
      queryRedirectRecordsSync(accepted);
    } catch {}
  }
  const afterQueries = memoryMb();
  const concurrency = 32;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < roundTrips) await roundTrip(next++);
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  const afterRoundTrips = memoryMb();
  const handlesAfter = activeHandles();
  for (const socket of pairs.sockets) socket.destroy();
  pairs.server.close();
  for (const { server } of servers) server.close();
  const growth = Math.max(afterQueries.rss - before.rss, afterRoundTrips.rss - before.rss);
  return {
    queries,
    roundTrips,
    before,
    afterQueries,
    afterRoundTrips,
    rssGrowthMb: growth,
    handlesBefore,
    handlesAfter,
    goal: 'RSS growth < 5 MB after GC, no handle growth',
    met: growth < 5 && handlesAfter <= handlesBefore,
  };
}

function fmt(ns: number | null): string {
  return ns === null ? 'n/a' : ns >= 10_000 ? `${(ns / 1000).toFixed(1)} us` : `${Math.round(ns)} ns`;
}

async function main(): Promise<void> {
  const machine = {
    platform: `${process.platform} ${os.release()}${process.env.WFP_REDIRECT_UNDER_WINE === '1' ? ' (Wine)' : ''}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
  };
  const lookup = await lookupCost();
  const overhead = await callOverhead();
  const mem = await memory();
  const results = { date: new Date().toISOString(), quick, machine, lookup, overhead, memory: mem };

  console.log(`wfp-redirect benchmarks${quick ? ' (quick)' : ''}: ${machine.platform}, ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}\n`);
  console.log(`1. Lookup of a just-accepted socket (median of ${lookup.samples})`);
  console.log('| other connections open | new socket: lookup | sockets asked | the OS\'s getsockname + getpeername alone | oldest socket, first lookup | sockets asked |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const row of lookup.rows) {
    console.log(
      `| ${row.open.toLocaleString('en')} | ${fmt(row.medianNs)} | ${row.socketsChecked} | ${fmt(row.osAddressCallsNs)} | ${fmt(row.oldestFirstLookupNs)} | ${row.oldestSocketsChecked.toLocaleString('en')} |`,
    );
  }
  console.log(`t(${lookup.rows[lookup.rows.length - 1].open}) / t(10) = ${lookup.ratio.toFixed(2)} (goal <= 1.5: ${verdict(lookup.met)})\n`);
  console.log(`2. Call overhead (median of 5 runs of ${overhead.iterations.toLocaleString('en')}; path: ${overhead.path})`);
  console.log('| call | per call |');
  console.log('| --- | ---: |');
  console.log(`| bare Node-API call (floor) | ${fmt(overhead.floorNoopNs)} |`);
  console.log(`| getSocketHandle (cached) | ${fmt(overhead.getSocketHandleCachedNs)} |`);
  console.log(`| queryRedirectRecordsSync | ${fmt(overhead.syncNs)} |`);
  console.log(`| await queryRedirectRecords | ${fmt(overhead.asyncNs)} |`);
  console.log(`| raw WSAIoctl loop in C | ${fmt(overhead.rawWsaIoctlNs)} |`);
  console.log(overhead.syncOverRaw === null ? 'sync / raw: n/a (no WFP IOCTLs on this platform)\n' : `sync / raw = ${overhead.syncOverRaw.toFixed(2)} (goal <= 2: ${verdict(overhead.met)})\n`);
  console.log('3. Memory (after two GCs)');
  console.log('| after | RSS | growth | JS heap + external | growth |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  const mb = (n: number) => `${n.toFixed(1)} MB`;
  console.log(`| start | ${mb(mem.before.rss)} | | ${mb(mem.before.js)} | |`);
  for (const [label, at] of [[`${mem.queries.toLocaleString('en')} queries`, mem.afterQueries], [`${mem.roundTrips.toLocaleString('en')} connectRedirected round trips`, mem.afterRoundTrips]] as const) {
    console.log(`| ${label} | ${mb(at.rss)} | ${mb(at.rss - mem.before.rss)} | ${mb(at.js)} | ${mb(at.js - mem.before.js)} |`);
  }
  console.log(`active handles: ${mem.handlesBefore} before, ${mem.handlesAfter} after (goal: RSS growth < 5 MB, no handle growth: ${verdict(mem.met)})`);

  const file = process.env.WFP_REDIRECT_BENCH_OUT ?? (quick ? join(root, 'dist-bench', 'results-quick.json') : join(root, 'bench', 'results.json'));
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwritten to ${file}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
