// The CLI with --via, through real upstream proxies the tests start (dante for
// SOCKS5, tinyproxy for HTTP CONNECT with Basic auth): bytes through intact,
// the upstream named in each log line without its credentials, an upstream's
// refusal logged with its code, and what is refused at start-up.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { TransparentProxy, type ConnectionLog } from '..';
import { echoServers, missingBinary, startDante, startTinyproxy, type RealServer } from './fixtures/upstream-servers';
import { closedPortBelowEphemeral } from './helpers';
import { CLI, roundTrip, start, stop } from './proxy-process';

async function logsOf(proxy: { stdout: string[] }, count: number): Promise<ConnectionLog[]> {
  for (let waited = 0; proxy.stdout.length < count && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
  return proxy.stdout.map((line) => JSON.parse(line) as ConnectionLog);
}

describe('wfp-redirect-proxy --via (real upstream proxies)', function () {
  this.timeout(60_000);
  const USER = 'relay';
  const PASSWORD = `pw${randomBytes(6).toString('hex')}`;
  let dante: RealServer | undefined;
  let tinyproxy: RealServer | undefined;
  let echo: Awaited<ReturnType<typeof echoServers>>;

  before(async function () {
    const missing = missingBinary('danted', ['-v']) ?? missingBinary('tinyproxy', ['-v']);
    if (missing) {
      console.warn(`    !!! SKIPPED, the --via tests against real upstreams did NOT run: ${missing}`);
      this.skip();
    }
    echo = await echoServers();
    dante = await startDante('none');
    tinyproxy = await startTinyproxy(USER, PASSWORD, [echo.port]);
  });
  after(async () => {
    await dante?.stop();
    await tinyproxy?.stop();
    await echo?.close();
  });

  it('socks5:// (dante): 10 connections of 1 MB intact, each logged with the upstream', async function () {
    const via = `socks5://127.0.0.1:${dante!.port}`;
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${echo.port}`, '--via', via, '--log', 'json'], /listening on .*:(\d+)$/);
    try {
      assert.ok(proxy.stderr.some((line) => line.includes(`through ${via}`)), proxy.stderr.join('\n'));
      await Promise.all(Array.from({ length: 10 }, () => roundTrip(proxy.port, 1)));
      const logs = await logsOf(proxy, 10);
      assert.equal(logs.length, 10);
      for (const log of logs) {
        assert.equal(log.via, via);
        assert.equal(log.error, undefined, JSON.stringify(log));
        // The client's bytes, not the SOCKS5 handshake's as well.
        assert.deepEqual([log.bytesUp, log.bytesDown], [1024 * 1024, 1024 * 1024]);
      }
    } finally {
      await stop(proxy);
    }
  });

  it('http:// with Basic auth (tinyproxy): relayed; the password appears in no log line and nowhere on stderr', async function () {
    const via = `http://${USER}:${PASSWORD}@127.0.0.1:${tinyproxy!.port}`;
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${echo.port}`, '--via', via, '--log', 'json'], /listening on .*:(\d+)$/);
    try {
      await roundTrip(proxy.port, 1);
      const [log] = await logsOf(proxy, 1);
      assert.equal(log.via, `http://127.0.0.1:${tinyproxy!.port}`);
      // The client's bytes, not the CONNECT request's as well.
      assert.deepEqual([log.bytesUp, log.bytesDown], [1024 * 1024, 1024 * 1024]);
      const everything = [...proxy.stdout, ...proxy.stderr].join('\n');
      assert.ok(!everything.includes(PASSWORD), 'the password was written out');
    } finally {
      await stop(proxy);
    }
  });

  it("an upstream's refusal (a wrong password) is logged with its code, and the client's connection closed", async function () {
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${echo.port}`, '--via', `http://${USER}:wrong@127.0.0.1:${tinyproxy!.port}`, '--log', 'json'], /listening on .*:(\d+)$/);
    try {
      await assert.rejects(roundTrip(proxy.port, 1));
      const [log] = await logsOf(proxy, 1);
      assert.equal(log.error, 'ERR_HTTP_PROXY_AUTH_REQUIRED', JSON.stringify(log));
      assert.ok(!proxy.stdout.join('').includes('wrong'));
    } finally {
      await stop(proxy);
    }
  });

  it('--udp through socks5:// (dante, UDP ASSOCIATE): 10 flows x 20 datagrams answered intact, from sockets dante holds, each flow logged', async function () {
    const reflector = dgram.createSocket('udp4');
    const peers = new Set<number>();
    reflector.on('message', (data, rinfo) => {
      peers.add(rinfo.port);
      reflector.send(Buffer.from(data).reverse(), rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve) => reflector.bind(0, '127.0.0.1', resolve));
    const via = `socks5://127.0.0.1:${dante!.port}`;
    const proxy = await start(
      [CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${reflector.address().port}`, '--via', via, '--udp', '--udp-idle-timeout', '1500', '--log', 'json'],
      /relaying UDP on .*:(\d+)$/,
    );
    try {
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const client = dgram.createSocket('udp4');
          await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
          try {
            for (let i = 0; i < 20; i++) {
              const request = randomBytes(1 + i * 50);
              const reply = new Promise<Buffer>((resolve, reject) => {
                const timer = setTimeout(() => reject(new Error(`no reply to datagram ${i}\n${dante!.log()}`)), 5000);
                client.once('message', (message) => {
                  clearTimeout(timer);
                  resolve(message);
                });
              });
              client.send(request, proxy.port, '127.0.0.1');
              assert.ok((await reply).equals(Buffer.from(request).reverse()));
            }
          } finally {
            client.close();
          }
        }),
      );
      // Through dante: every datagram reached the reflector from a socket danted holds, none from the proxy's own.
      const sockets = spawnSync('ss', ['-Huanp'], { encoding: 'utf8' }).stdout;
      for (const port of peers) {
        const holder = sockets.split('\n').find((line) => new RegExp(`[:\\]]${port}\\s`).test(line));
        assert.match(holder ?? '', /danted/, `port ${port}: ${holder}`);
      }
      const flows = (await logsOf(proxy, 10)).filter((entry) => (entry as unknown as { protocol?: string }).protocol === 'udp');
      assert.equal(flows.length, 10, proxy.stdout.join('\n'));
      for (const flow of flows as unknown as Array<{ datagramsUp: number; datagramsDown: number; end: string }>) {
        assert.deepEqual([flow.datagramsUp, flow.datagramsDown, flow.end], [20, 20, 'idle']);
      }
    } finally {
      await stop(proxy);
      reflector.close();
    }
  });

  it('the route hook may send one connection through an upstream and another direct', async function () {
    const seen: Array<string | undefined> = [];
    const proxy = new TransparentProxy({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port: echo.port } },
      route: ({ destination }) => (seen.length % 2 === 0 ? { ...destination, via: `socks5h://127.0.0.1:${dante!.port}` } : undefined),
      log: (entry) => seen.push(entry.via),
    });
    const { port } = await proxy.listen();
    try {
      await roundTrip(port, 1);
      await roundTrip(port, 1);
      for (let waited = 0; seen.length < 2 && waited < 5000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(seen, [`socks5h://127.0.0.1:${dante!.port}`, undefined]);
    } finally {
      await proxy.shutdown(0);
    }
  });
});

describe('wfp-redirect-proxy --via: refused at start-up', function () {
  this.timeout(30_000);
  const refusals: Array<[string, string[], number, RegExp]> = [
    ['a URL of another scheme', ['--via', 'socks4://127.0.0.1:1080'], 2, /--via: .*socks4/],
    ['an http:// upstream with --udp', ['--via', 'http://127.0.0.1:3128', '--udp'], 2, /--udp with an http:\/\/ --via: HTTP CONNECT carries no UDP/],
    ['an upstream that is the proxy itself', ['--via', 'socks5://127.0.0.1:PORT'], 1, /cannot start: a redirect loop: the upstream 127\.0\.0\.1:\d+ is this proxy's own listening address/],
  ];
  for (const [label, args, status, message] of refusals) {
    it(`${label}: exit ${status}, and why`, async function () {
      // A port free now and outside the ephemeral range: a random one in it was once some other socket's (EADDRINUSE).
      const port = await closedPortBelowEphemeral();
      const run = spawnSync(process.execPath, [CLI, '--listen', `127.0.0.1:${port}`, '--upstream', '127.0.0.1:9', ...args.map((arg) => arg.replace('PORT', String(port)))], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, status, run.stderr);
      assert.match(run.stderr, message);
    });
  }
});
