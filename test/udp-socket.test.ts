// RedirectUdpSocket and the UDP relay as a program uses them, on Linux and in
// Windows node.exe: sizes at both ends, dgram on the other side, closing at
// awkward moments, bad arguments, and 1,000 flows opened and expired with
// nothing left behind (libuv handles, OS sockets, memory).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { MAX_BLOB_SIZE, RedirectUdpSocket, UdpRelay, type FlowLog, type RedirectedRemoteInfo } from '..';
import { isWindows, LOOPBACK, thrown, until, type Family } from './helpers';

const pollHandles = () => (process.report.getReport() as unknown as { libuv: Array<{ type: string }> }).libuv.filter((handle) => handle.type === 'poll').length;
/** Open file descriptors (Linux); undefined elsewhere. */
const openFds = () => (process.platform === 'linux' ? readdirSync('/proc/self/fd').length : undefined);
async function bound(family: Family): Promise<RedirectUdpSocket> {
  const socket = new RedirectUdpSocket(family === 'IPv6' ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => socket.bind(0, LOOPBACK[family], resolve));
  return socket;
}

describe('RedirectUdpSocket', function () {
  this.timeout(60_000);

  for (const family of ['IPv4', 'IPv6'] as Family[]) {
    it(`${family}: datagrams of 65,507, 1 and 0 bytes arrive intact from dgram, with dgram's rinfo, and go back to it`, async function () {
      const socket = await bound(family);
      const peer = dgram.createSocket(family === 'IPv6' ? 'udp6' : 'udp4');
      await new Promise<void>((resolve) => peer.bind(0, LOOPBACK[family], resolve));
      const got: Array<[Buffer, RedirectedRemoteInfo]> = [];
      socket.on('message', (data, rinfo) => got.push([data, rinfo]));
      const echoed: Buffer[] = [];
      peer.on('message', (data) => echoed.push(data));
      try {
        const big = Buffer.alloc(65_507);
        for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
        for (const datagram of [big, Buffer.from([42]), Buffer.alloc(0)]) {
          peer.send(datagram, socket.address().port, LOOPBACK[family]);
          await until(() => got.length === echoed.length + 1, 'the datagram');
          socket.send(got[got.length - 1][0], peer.address().port, LOOPBACK[family]);
          await until(() => echoed.length === got.length, 'the echo');
        }
        assert.ok(got[0][0].equals(big) && echoed[0].equals(big), '65,507 bytes both ways');
        assert.deepEqual([...got[1][0]], [42]);
        assert.equal(got[2][0].length, 0);
        assert.equal(echoed[2].length, 0);
        assert.deepEqual(got[0][1], { address: LOOPBACK[family], family, port: peer.address().port, size: 65_507 });
        assert.deepEqual(socket.stats, { received: 3, truncated: 0, malformedControl: 0, sendsQueued: 0, sendQueueFull: 0 });
      } finally {
        socket.close();
        peer.close();
      }
    });
  }

  it('a host name is looked up in the socket\'s family; an unbound socket binds itself to send, and hears the reply', async function () {
    const server = await bound('IPv4');
    server.on('message', (data, rinfo) => server.send(data, rinfo.port, rinfo.address));
    const client = new RedirectUdpSocket('udp4');
    try {
      const reply = new Promise<Buffer>((resolve) => client.once('message', resolve));
      await new Promise<void>((resolve, reject) => client.send('ping', server.address().port, 'localhost', (error) => (error ? reject(error) : resolve())));
      assert.equal(String(await reply), 'ping');
      assert.equal(client.address().family, 'IPv4');
    } finally {
      server.close();
      client.close();
    }
  });

  it('closing inside a message listener with more datagrams waiting: no further message, no error, the poll handle goes', async function () {
    const before = pollHandles();
    const socket = await bound('IPv4');
    const sender = dgram.createSocket('udp4');
    let messages = 0;
    let closed = false;
    socket.on('message', () => {
      ++messages;
      socket.close(() => (closed = true));
    });
    socket.on('error', (error) => assert.fail(error));
    try {
      // Queued before the loop reads any: the first wake-up finds them all.
      await Promise.all(Array.from({ length: 20 }, () => new Promise((resolve) => sender.send('x', socket.address().port, '127.0.0.1', resolve))));
      await until(() => closed, "'close'");
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(messages, 1);
      assert.equal(pollHandles(), before);
    } finally {
      sender.close();
    }
  });

  it('after close(): send, bind and address throw ERR_SOCKET_DGRAM_NOT_RUNNING; a second close is harmless', async function () {
    const socket = await bound('IPv4');
    socket.close();
    socket.close();
    for (const call of [() => socket.send('x', 9, '127.0.0.1'), () => socket.bind(0), () => socket.address()]) {
      const error = thrown(call);
      assert.equal(error.code, 'ERR_SOCKET_DGRAM_NOT_RUNNING');
      assert.equal(error.name, 'WfpRedirectError');
    }
  });

  it('a send that closes the socket before it goes (a looked-up name) reports ERR_SOCKET_DGRAM_NOT_RUNNING to its callback', async function () {
    const socket = new RedirectUdpSocket('udp4');
    const result = new Promise<Error | null>((resolve) => socket.send('x', 9, 'localhost', resolve));
    socket.close();
    assert.equal(((await result) as Error & { code: string }).code, 'ERR_SOCKET_DGRAM_NOT_RUNNING');
  });

  it('bad arguments are TypeError / RangeError with codes, and nothing is sent', async function () {
    const socket = await bound('IPv4');
    try {
      assert.equal(thrown(() => new RedirectUdpSocket('udp5' as 'udp4')).code, 'ERR_INVALID_ARG_TYPE');
      assert.equal(thrown(() => socket.send(42 as unknown as string, 9, '127.0.0.1')).code, 'ERR_INVALID_ARG_TYPE');
      assert.equal(thrown(() => socket.send('x', 0, '127.0.0.1')).code, 'ERR_SOCKET_BAD_PORT');
      assert.equal(thrown(() => socket.send('x', 65536, '127.0.0.1')).code, 'ERR_SOCKET_BAD_PORT');
      assert.equal(thrown(() => socket.send('x', 9, '')).code, 'ERR_INVALID_ARG_TYPE');
      assert.equal(thrown(() => socket.send('x', 9, '127.0.0.1', { redirectRecords: 'abc' as unknown as Uint8Array })).code, 'ERR_INVALID_ARG_TYPE');
      // Worded for the datagram's control message, not the TCP IOCTL.
      const tooLarge = thrown(() => socket.send('x', 9, '127.0.0.1', { redirectRecords: Buffer.alloc(MAX_BLOB_SIZE + 1) }));
      assert.equal(tooLarge.code, 'ERR_WFP_BLOB_TOO_LARGE');
      assert.match(tooLarge.message, /^IP_WFP_REDIRECT_RECORDS: the records for this datagram are larger than the 65536 bytes/);
      const empty = thrown(() => socket.send('x', 9, '127.0.0.1', { redirectRecords: Buffer.alloc(0) }));
      assert.equal(empty.name, 'RangeError');
      assert.equal(empty.code, 'ERR_WFP_RECORDS_EMPTY');
      assert.match(empty.message, /^IP_WFP_REDIRECT_RECORDS: the records for this datagram are empty/);
      for (const error of [tooLarge, empty]) assert.doesNotMatch(`${error.message} ${error.ioctl}`, /SIO_|IOCTL|accepted socket/i);
      assert.equal(thrown(() => socket.send('x', 9, '127.0.0.1', { from: { address: '127.0.0.1', port: 9 } })).code, 'ERR_INVALID_ARG_VALUE');
      assert.equal(thrown(() => socket.bind(0, '127.0.0.1')).code, 'ERR_SOCKET_ALREADY_BOUND');
      const fresh = new RedirectUdpSocket('udp4');
      assert.equal(thrown(() => fresh.bind(0, '::1')).code, 'ERR_INVALID_ARG_TYPE', 'an IPv6 address for udp4');
      assert.equal(thrown(() => fresh.bind(70000)).code, 'ERR_SOCKET_BAD_PORT');
      assert.equal(thrown(() => fresh.address()).code, 'ERR_SOCKET_DGRAM_NOT_BOUND');
      fresh.close();
      assert.equal(thrown(() => new RedirectUdpSocket({ type: 'udp4', mark: 1.5 })).code, 'ERR_OUT_OF_RANGE');
      if (isWindows) {
        assert.equal(thrown(() => new RedirectUdpSocket({ type: 'udp4', transparent: true })).code, 'ERR_WFP_UNSUPPORTED_PLATFORM');
        assert.equal(thrown(() => new RedirectUdpSocket({ type: 'udp4', mark: 7 })).code, 'ERR_WFP_UNSUPPORTED_PLATFORM');
      } else {
        const platform = thrown(() => socket.send('x', 9, '127.0.0.1', { redirectRecords: Buffer.from([1]) }));
        assert.equal(platform.code, 'ERR_WFP_UNSUPPORTED_PLATFORM');
        assert.match(platform.message, /IP_WFP_REDIRECT_RECORDS control message\) on Windows only/);
      }
      assert.equal(socket.stats.received, 0);
    } finally {
      socket.close();
    }
  });

  for (const ending of ['terminate()', 'process.exit()'] as const) {
    it(`a worker thread's socket works, and is closed with the thread when it ends by ${ending} with the socket open`, async function () {
      const fds = openFds();
      const before = pollHandles();
      const worker = new Worker(join(__dirname, 'fixtures', 'udp-worker.js'), { workerData: { exit: ending === 'process.exit()' } });
      const messages: Array<{ port?: number; answered?: boolean }> = [];
      worker.on('message', (message) => messages.push(message));
      const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
      const peer = dgram.createSocket('udp4');
      try {
        await until(() => messages.some((message) => message.port), 'the worker to bind');
        const echo = new Promise<Buffer>((resolve) => peer.once('message', resolve));
        peer.send('to the worker', messages.find((message) => message.port)!.port!, '127.0.0.1');
        assert.equal(String(await echo), 'to the worker');
        await until(() => messages.some((message) => message.answered), 'the worker to answer');
        if (ending === 'terminate()') await worker.terminate();
        await exited;
        assert.equal(pollHandles(), before, "the worker's poll handle was never this thread's");
        if (fds !== undefined) await until(() => openFds() === fds + 1, "the worker's OS socket to close (the peer's stays)");
      } finally {
        peer.close();
        await worker.terminate();
      }
    });
  }

  it("an exception thrown by a 'message' listener reaches 'uncaughtException', as with dgram, and the socket goes on receiving", function () {
    // In a process of its own: mocha owns this one's uncaught exceptions.
    const script = `
      const dgram = require('node:dgram');
      const { RedirectUdpSocket } = require(${JSON.stringify(join(__dirname, '..'))});
      const caught = [];
      let messages = 0;
      process.on('uncaughtException', (error) => caught.push(error.message));
      const socket = new RedirectUdpSocket('udp4');
      const peer = dgram.createSocket('udp4');
      socket.on('message', () => {
        if (++messages === 1) throw new Error('thrown by the listener');
        console.log(JSON.stringify({ messages, caught }));
        socket.close();
        peer.close();
      });
      socket.bind(0, '127.0.0.1', () => {
        peer.send('one', socket.address().port, '127.0.0.1', () => setTimeout(() => peer.send('two', socket.address().port, '127.0.0.1'), 100));
      });`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim().split('\n').pop()!), { messages: 2, caught: ['thrown by the listener'] });
  });

  it("the OS refusing a bind is an 'error' event, as dgram's (a WfpRedirectError, EADDRINUSE), not a throw; no callback, no 'listening'; the socket binds again", async function () {
    const taken = await bound('IPv4');
    const second = new RedirectUdpSocket('udp4');
    try {
      let listened = false;
      second.on('listening', () => (listened = true));
      const failed = once(second, 'error');
      assert.equal(second.bind(taken.address().port, '127.0.0.1', () => assert.fail('the bind callback was called')), second, 'bind() returned, did not throw');
      const [error] = (await failed) as [Error & { code?: string; syscall?: string; errno?: number }];
      assert.equal(error.name, 'WfpRedirectError');
      assert.equal(error.code, 'EADDRINUSE');
      assert.equal(error.syscall, 'bind');
      assert.equal(typeof error.errno, 'number');
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(listened, false);
      assert.equal(thrown(() => second.address()).code, 'ERR_SOCKET_DGRAM_NOT_BOUND');
      await new Promise<void>((resolve) => second.bind(0, '127.0.0.1', resolve));
      assert.ok(second.address().port > 0);
    } finally {
      taken.close();
      second.close();
    }
  });
});

describe('the UDP relay: 1,000 flows opened and expired', function () {
  this.timeout(120_000);

  it('leaves no flow, libuv handle, OS socket or memory behind', async function () {
    const server = dgram.createSocket('udp4');
    server.on('message', (data, rinfo) => server.send(data, rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    const logs: FlowLog[] = [];
    // Every client is 127.0.0.1 and hundreds of flows overlap: one source may hold them all (no per-source eviction).
    const relay = new UdpRelay({ listen: { host: '127.0.0.1', port: 0 }, destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port: server.address().port } }, idleTimeout: 300, maxFlowsPerSource: 1024, log: (entry) => logs.push(entry) });
    const { port } = await relay.listen();
    const client = async () => {
      const socket = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      return socket;
    };
    // 50 batches of 20 new clients: 1,000 flows, one datagram each way. Kept
    // to 20 at once: a larger burst can overflow a socket's receive buffer,
    // and UDP is allowed to drop.
    let sent = 0;
    let resent = 0;
    const round = async () => {
      for (let batch = 0; batch < 50; batch++) {
        const clients = await Promise.all(Array.from({ length: 20 }, client));
        await Promise.all(
          clients.map(async (socket, index) => {
            const reply = new Promise((resolve) => socket.once('message', resolve));
            // UDP may drop (under Wine's load it did, and the test hung): send again after 2 s, up to 5 times.
            for (let attempt = 0; attempt < 5; attempt++) {
              socket.send(Buffer.alloc(1000, index), port, '127.0.0.1');
              sent++;
              if (await Promise.race([reply.then(() => true), new Promise((resolve) => setTimeout(resolve, 2_000, false))])) return;
              resent++;
            }
            throw new Error('no reply to 5 datagrams');
          }),
        );
        for (const socket of clients) socket.close();
      }
      await until(() => relay.stats.flows === 0, 'every flow to expire');
    };
    try {
      const handles = pollHandles();
      const fds = openFds();
      await round();
      const rss = process.memoryUsage().rss;
      await round();
      const grown = process.memoryUsage().rss - rss;
      // A new client can get the port of one that closed while its flow was
      // still open: that is the same flow (same endpoints), so count datagrams.
      const total = (key: 'datagramsUp' | 'datagramsDown') => logs.reduce((sum, entry) => sum + entry[key], 0);
      if (resent > 0) console.warn(`      !!! ${resent} datagram(s) got no reply within 2 s and were sent again (UDP dropped them)`);
      // Every reply came through the relay; every datagram it relayed up was one sent. Without drops, both are 2,000.
      assert.ok(total('datagramsUp') >= 2000 && total('datagramsUp') <= sent, `${total('datagramsUp')} up of ${sent} sent`);
      assert.ok(total('datagramsDown') >= 2000 && total('datagramsDown') <= total('datagramsUp'), `${total('datagramsDown')} down, ${total('datagramsUp')} up`);
      if (resent === 0) assert.equal(total('datagramsUp'), 2000);
      assert.ok(logs.length > 1000, `${logs.length} flows`);
      assert.ok(logs.every((entry) => entry.end === 'idle'), JSON.stringify(logs.find((entry) => entry.end !== 'idle')));
      // A handle being closed is listed until its close callback has run, in a
      // later phase of the loop than the expiry that closed it; on Windows only
      // once its pending poll request has come back, which under Wine on a busy
      // machine was seen to take over 2 s (5 of 1,000 still listed). A leak stays.
      const closing = Date.now();
      await until(() => pollHandles() <= handles, 'the poll handles to close', 15_000).catch(() => {});
      assert.equal(pollHandles(), handles, 'every outbound socket\'s poll handle is closed (waited 15 s)');
      if (Date.now() - closing > 1_000) console.warn(`      !!! the last poll handles took ${Date.now() - closing} ms to close after their flows ended`);
      if (fds !== undefined) assert.equal(openFds(), fds, 'every outbound OS socket is closed');
      console.log(`      RSS after the second 1,000 flows: ${(grown / 1048576).toFixed(1)} MB more than after the first`);
      assert.ok(grown < 32 * 1048576, `RSS grew ${(grown / 1048576).toFixed(1)} MB over the second 1,000 flows`);
    } finally {
      await relay.shutdown();
      server.close();
    }
  });
});
