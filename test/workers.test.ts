// bin/wfp-redirect-proxy --workers: several relay processes on one port
// (lib/proxy/workers.ts), run as their own processes against a local upstream.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { isWindows } from './helpers';
import { CLI, echoServer, roundTrip, start, stop } from './proxy-process';

const CONNECTIONS = isWindows ? 20 : 40;

/** Whether a process is alive (signal 0 checks without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('bin/wfp-redirect-proxy --workers', function () {
  this.timeout(120_000);
  let upstream: net.Server;
  let upstreamPort: number;

  before(async () => {
    upstream = await echoServer();
    upstreamPort = (upstream.address() as net.AddressInfo).port;
  });
  after(() => upstream.close());

  for (const [value, message] of [
    ['0', /--workers wants a whole number of at least 1, not "0"/],
    ['many', /--workers wants a whole number of at least 1, not "many"/],
  ] as const) {
    it(`refuses --workers ${value} with exit code 2`, function () {
      const run = spawnSync(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--upstream', 'a:1', '--workers', value], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 2, run.stderr);
      assert.match(run.stderr, message);
    });
  }

  it(`relays ${CONNECTIONS} connections intact through 2 workers, each log line naming its worker`, async function () {
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${upstreamPort}`, '--workers', '2', '--log', 'json'], /worker 2: listening on .*:(\d+)$/);
    try {
      while (!proxy.stderr.some((line) => /worker 1: listening/.test(line))) await new Promise((r) => setTimeout(r, 20));
      for (let i = 0; i < CONNECTIONS; i += 10) await Promise.all(Array.from({ length: 10 }, () => roundTrip(proxy.port, 1)));
      const deadline = Date.now() + 10_000;
      while (proxy.stdout.length < CONNECTIONS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const entries = proxy.stdout.map((line) => JSON.parse(line) as { worker: number; error?: string; bytesUp: number });
      assert.equal(entries.length, CONNECTIONS);
      const perWorker = [1, 2].map((n) => entries.filter((entry) => entry.worker === n).length);
      assert.equal(perWorker[0] + perWorker[1], CONNECTIONS, 'every line names worker 1 or 2');
      for (const entry of entries) assert.equal(entry.error, undefined, JSON.stringify(entry));
      console.log(`      connections per worker: ${perWorker.join(' / ')}${isWindows ? ' (one shared listening socket)' : ' (SO_REUSEPORT)'}`);
      // Linux: the kernel hashes each connection's ports to a worker; all 40 on one would be a 1 in 2^39 chance.
      if (!isWindows) assert.ok(perWorker[0] > 0 && perWorker[1] > 0, `one worker took every connection: ${perWorker.join(' / ')}`);
    } finally {
      await stop(proxy);
    }
  });

  it('SIGTERM to the primary alone stops every worker gracefully, and leaves no process behind', async function () {
    if (isWindows) {
      console.warn('    !!! Windows: no POSIX signals to send; the workers\' shutdown is tested on Linux only');
      this.skip();
    }
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${upstreamPort}`, '--workers', '2'], /worker 2: listening on .*:(\d+)$/);
    while (!proxy.stderr.some((line) => /worker 1: listening/.test(line))) await new Promise((r) => setTimeout(r, 20));
    const pids = /pids (\d+), (\d+)/.exec(proxy.stderr.join('\n'))!.slice(1).map(Number);
    assert.ok(pids.every(alive));
    await roundTrip(proxy.port, 1);
    // Only the primary's pid: not the process group a terminal's Ctrl+C would reach.
    proxy.child.kill('SIGTERM');
    const timer = setTimeout(() => proxy.child.kill('SIGKILL'), 20_000);
    const [code] = await once(proxy.child, 'exit');
    clearTimeout(timer);
    assert.equal(code, 0, proxy.stderr.join('\n'));
    const text = proxy.stderr.join('\n');
    assert.match(text, /worker 1: stopped/);
    assert.match(text, /worker 2: stopped/);
    for (const pid of pids) assert.ok(!alive(pid), `worker pid ${pid} is still running`);
  });

  it('replaces a worker that dies, and keeps serving', async function () {
    if (isWindows) this.skip();
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${upstreamPort}`, '--workers', '2'], /worker 2: listening on .*:(\d+)$/);
    try {
      while (!proxy.stderr.some((line) => /worker 1: listening/.test(line))) await new Promise((r) => setTimeout(r, 20));
      const [first] = /pids (\d+), (\d+)/.exec(proxy.stderr.join('\n'))!.slice(1).map(Number);
      process.kill(first, 'SIGKILL');
      while (proxy.stderr.filter((line) => /worker 1: listening/.test(line)).length < 2) await new Promise((r) => setTimeout(r, 20));
      assert.match(proxy.stderr.join('\n'), /worker 1 \(pid \d+\) stopped \(SIGKILL\); starting another/);
      for (let i = 0; i < 10; i++) await roundTrip(proxy.port, 1);
    } finally {
      await stop(proxy);
    }
  });

  it('a port already taken: every worker stops, exit code 1, one clear line', async function () {
    const taken = net.createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const run = spawnSync(process.execPath, [CLI, '--listen', `127.0.0.1:${port}`, '--upstream', 'a:1', '--workers', '2'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, /cannot start: (listen|bind) EADDRINUSE/);
      assert.match(run.stderr, /could not start \(exit code 1\); stopping the others/);
      assert.doesNotMatch(run.stderr, /accepting a connection failed/);
    } finally {
      taken.close();
    }
  });
});
