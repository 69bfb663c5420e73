// RedirectUdpSocket when the OS pushes back (Linux, real kernel): a send
// buffer that fills (a rate-limited loopback in a network namespace), a poll
// that fails (ICMP errors queued under IP_RECVERR, set by a test-only addon),
// and a TPROXY reply whose address a local socket holds. Each needs Linux and
// root; without them it says so loudly and is pending.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RedirectUdpSocket } from '..';
import { addNetworkNamespace, LOOPBACK, thrown, until, type Family } from './helpers';

const NS = `wfp-redirect-udpq-${process.pid}`;
const pollHandles = () => (process.report.getReport() as unknown as { libuv: Array<{ type: string }> }).libuv.filter((handle) => handle.type === 'poll').length;
const notLinuxRoot = () => (process.platform !== 'linux' ? 'not Linux' : process.getuid?.() !== 0 ? 'not root' : undefined);

async function dgramOn(family: Family): Promise<dgram.Socket> {
  const socket = dgram.createSocket(family === 'IPv6' ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => socket.bind(0, LOOPBACK[family], resolve));
  return socket;
}

async function freePort(family: Family): Promise<number> {
  const socket = await dgramOn(family);
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  return port;
}

describe('RedirectUdpSocket: a send buffer that fills (Linux, rate-limited loopback in a network namespace)', function () {
  this.timeout(60_000);
  const STEADY = 600;
  const FLOOD = 3000;
  const CLOSED = 600;
  let outcome: Record<'steady' | 'full' | 'closed', { sent: number; ok: number; errors: Record<string, number>; callbacks: number; callbackOrderKept: boolean; arrived: number; arrivedInOrder: boolean; arrivedIndexes: number[]; okIndexes: number[]; sendsQueued: number; sendQueueFull: number }>;

  before(function () {
    const reason = notLinuxRoot() ?? addNetworkNamespace(NS, ['tc']);
    if (reason) {
      console.warn(`    !!! THE UDP SEND-QUEUE TESTS WERE NOT RUN: ${reason}`);
      this.skip();
    }
    const run = (command: string[]) => spawnSync('ip', ['netns', 'exec', NS, ...command], { encoding: 'utf8' });
    run(['ip', 'link', 'set', 'lo', 'up']);
    // 8 Mbit/s: a datagram waits in the qdisc, charged to its sender's buffer, which a burst fills.
    const shaped = run(['tc', 'qdisc', 'replace', 'dev', 'lo', 'root', 'tbf', 'rate', '8mbit', 'burst', '16kb', 'latency', '2s']);
    if (shaped.status !== 0) {
      console.warn(`    !!! THE UDP SEND-QUEUE TESTS WERE NOT RUN: tc cannot shape loopback: ${shaped.stderr.trim()}`);
      this.skip();
    }
    // On one CPU: loopback hands each packet to the backlog of the CPU that sends it (or that runs tbf's timer), and
    // two CPUs' backlogs may deliver out of order (seen once in a CI run with the machine loaded); the order kept by
    // the send queue is what is measured here, not the kernel's across CPUs.
    const oneCpu = spawnSync('taskset', ['-c', '0', 'true']).status === 0 ? ['taskset', '-c', '0'] : [];
    if (oneCpu.length === 0) console.warn('    !!! taskset is missing (util-linux): the sender and receiver may run on two CPUs, which loopback can reorder');
    const fixture = [process.execPath, join(__dirname, 'fixtures', 'udp-send-queue.js'), String(STEADY), String(FLOOD), String(CLOSED)];
    const result = spawnSync('ip', ['netns', 'exec', NS, ...oneCpu, ...fixture], { encoding: 'utf8', timeout: 50_000 });
    const line = result.stdout.trim().split('\n').pop() ?? '';
    assert.ok(line.startsWith('{'), `no result from the namespace: ${result.stdout}\n${result.stderr}`);
    outcome = JSON.parse(line);
    assert.equal((outcome as unknown as { error?: string }).error, undefined);
  });

  after(() => spawnSync('ip', ['netns', 'del', NS]));

  it(`${STEADY} datagrams sent at once: the buffer fills for real, and every one goes, in order, its callback called once without error`, function () {
    const { steady } = outcome;
    assert.ok(steady.sendsQueued > 0, 'the send buffer filled (EAGAIN) and datagrams waited');
    assert.deepEqual(steady.errors, {}, 'no send ended in an error');
    assert.equal(steady.ok, STEADY);
    assert.equal(steady.callbacks, STEADY, 'each callback once');
    assert.ok(steady.callbackOrderKept, 'callbacks in the order of the sends');
    assert.deepEqual(steady.arrivedIndexes, Array.from({ length: STEADY }, (_, i) => i), 'every datagram arrived, in order');
  });

  it(`${FLOOD} at once: what the queue cannot hold is refused with ERR_WFP_UDP_SEND_QUEUE_FULL; every accepted one arrives, in order`, function () {
    const { full } = outcome;
    assert.deepEqual(Object.keys(full.errors), ['ERR_WFP_UDP_SEND_QUEUE_FULL'], JSON.stringify(full.errors));
    assert.ok(full.errors.ERR_WFP_UDP_SEND_QUEUE_FULL > 0);
    assert.equal(full.sendQueueFull, full.errors.ERR_WFP_UDP_SEND_QUEUE_FULL, 'counted in stats');
    assert.ok(full.sendsQueued <= 1024, `${full.sendsQueued} queued: no more than the limit`);
    assert.equal(full.ok + full.errors.ERR_WFP_UDP_SEND_QUEUE_FULL, FLOOD);
    assert.equal(full.callbacks, FLOOD, 'each callback once');
    assert.equal(full.arrived, full.ok, 'every accepted datagram arrived');
    assert.ok(full.callbackOrderKept, 'callbacks in the order of the sends');
    assert.ok(full.arrivedInOrder, 'the accepted datagrams arrived in the order of the sends');
  });

  it('close() with datagrams queued: each of their callbacks gets ERR_SOCKET_DGRAM_NOT_RUNNING, once; none goes after', function () {
    const { closed } = outcome;
    assert.ok(closed.sendsQueued > 0, 'datagrams were waiting when it closed');
    assert.deepEqual(Object.keys(closed.errors), ['ERR_SOCKET_DGRAM_NOT_RUNNING'], JSON.stringify(closed.errors));
    assert.equal(closed.ok + closed.errors.ERR_SOCKET_DGRAM_NOT_RUNNING, CLOSED);
    assert.equal(closed.callbacks, CLOSED, 'each callback once');
    assert.equal(closed.arrived, closed.ok, 'what was reported sent arrived; nothing more');
  });
});

describe('RedirectUdpSocket: a poll that fails (Linux, ICMP errors queued under IP_RECVERR)', function () {
  this.timeout(30_000);
  let probe: { setRecvErr(port: number, family: 4 | 6): void };

  before(function () {
    const file = join(__dirname, '..', 'test', 'native', 'build', 'Release', 'wfp_udp_probe.node');
    if (process.platform !== 'linux' || !existsSync(file)) {
      console.warn(`    !!! THE UDP POLL-FAILURE TESTS WERE NOT RUN: ${process.platform !== 'linux' ? 'not Linux' : `${file} is not built (npm run build:conformance)`}`);
      this.skip();
    }
    probe = require(file);
  });

  for (const family of ['IPv4', 'IPv6'] as Family[]) {
    it(`${family}: a failed poll is one 'error' with the socket's pending error (ECONNREFUSED); it is cleared and receiving goes on`, async function () {
      const socket = new RedirectUdpSocket(family === 'IPv6' ? 'udp6' : 'udp4');
      await new Promise<void>((resolve) => socket.bind(0, LOOPBACK[family], resolve));
      const peer = await dgramOn(family);
      const errors: Array<Error & { code?: string }> = [];
      const got: string[] = [];
      socket.on('error', (error) => errors.push(error));
      socket.on('message', (data) => got.push(String(data)));
      try {
        probe.setRecvErr(socket.address().port, family === 'IPv6' ? 6 : 4);
        socket.send('to nobody', await freePort(family), LOOPBACK[family], () => {});
        await until(() => errors.length > 0, "the poll failure's 'error'");
        assert.equal(errors[0].code, 'ECONNREFUSED', errors[0].message);
        assert.match(errors[0].message, /polling the UDP socket failed .*receiving goes on/);
        for (const text of ['after one', 'after two']) {
          peer.send(text, socket.address().port, LOOPBACK[family]);
          await until(() => got.includes(text), `'${text}' to arrive after the failure`, 5_000);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(errors.length, 1, 'the error was cleared: the poll does not fail again');
      } finally {
        socket.close();
        peer.close();
      }
    });
  }

  it('failing 10 times within 1 s closes the socket: one ERR_WFP_UDP_POLL_CLOSED, then close; the poll handle goes', async function () {
    const before = pollHandles();
    const socket = new RedirectUdpSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const errors: Array<Error & { code?: string }> = [];
    let closed = false;
    socket.on('error', (error) => errors.push(error));
    socket.on('close', () => (closed = true));
    try {
      probe.setRecvErr(socket.address().port, 4);
      const nobody = await freePort('IPv4');
      // One ICMP error per round, each seen by the poll before the next is caused.
      for (let round = 0; round < 15 && !closed; round++) {
        try {
          socket.send('to nobody', nobody, '127.0.0.1', () => {});
        } catch (error) {
          assert.equal((error as { code?: string }).code, 'ERR_SOCKET_DGRAM_NOT_RUNNING');
          break;
        }
        await until(() => errors.length > round, `poll failure ${round + 1}`, 2_000);
      }
      await until(() => closed, "'close'", 2_000);
      assert.deepEqual(errors.map((error) => error.code), [...Array(9).fill('ECONNREFUSED'), 'ERR_WFP_UDP_POLL_CLOSED']);
      assert.match(errors[9].message, /failed 10 times within 1000 ms .*the socket was closed; create a new one/);
      assert.equal(thrown(() => socket.send('x', 9, '127.0.0.1')).code, 'ERR_SOCKET_DGRAM_NOT_RUNNING');
    } finally {
      socket.close();
    }
    await until(() => pollHandles() <= before, 'the poll handle to close', 2_000).catch(() => {});
    assert.equal(pollHandles(), before);
  });
});

describe('RedirectUdpSocket: a TPROXY reply from an address a local socket holds (Linux, root)', function () {
  before(function () {
    const reason = notLinuxRoot();
    if (reason) {
      console.warn(`    !!! THE TPROXY REPLY-BIND TESTS WERE NOT RUN: ${reason}`);
      this.skip();
    }
  });

  for (const family of ['IPv4', 'IPv6'] as Family[]) {
    it(`${family}: EADDRINUSE that says a local socket holds the address and what to do; a reply from a free one still goes`, async function () {
      const holder = await dgramOn(family);
      const client = await dgramOn(family);
      const proxy = new RedirectUdpSocket({ type: family === 'IPv6' ? 'udp6' : 'udp4', transparent: true });
      const got: Array<{ text: string; port: number }> = [];
      client.on('message', (data, rinfo) => got.push({ text: String(data), port: rinfo.port }));
      try {
        await new Promise<void>((resolve) => proxy.bind(0, LOOPBACK[family], resolve));
        const held = holder.address().port;
        const error = (await new Promise<Error | null>((resolve) => proxy.send('reply', client.address().port, LOOPBACK[family], { from: { address: LOOPBACK[family], port: held } }, resolve))) as (Error & { code?: string; syscall?: string }) | null;
        assert.ok(error, 'the send failed');
        assert.equal(error?.code, 'EADDRINUSE');
        assert.equal(error.syscall, 'bind');
        const where = family === 'IPv6' ? `[::1]:${held}` : `127.0.0.1:${held}`;
        assert.ok(error.message.includes(`a local socket already holds ${where}, so the reply cannot be sent from it`), error.message);
        assert.match(error.message, /do not TPROXY traffic for a destination on this host/);
        const free = await freePort(family);
        await new Promise<void>((resolve, reject) => proxy.send('reply', client.address().port, LOOPBACK[family], { from: { address: LOOPBACK[family], port: free } }, (e) => (e ? reject(e) : resolve())));
        await until(() => got.length > 0, 'the reply from the free address');
        assert.deepEqual(got, [{ text: 'reply', port: free }]);
      } finally {
        proxy.close();
        holder.close();
        client.close();
      }
    });
  }
});
