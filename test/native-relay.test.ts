// The native relay (native/relay/, lib/proxy/native-relay.ts): a pair handed
// over with bytes still in Node's buffers, destroyed while being handed over,
// a destination that stops reading, both sides half-closing, timeouts, resets,
// a shutdown with native relays open, and the fallback to streams. Real
// sockets on loopback; the same cases on the 'streams' engine where the
// behaviour must be the same. Linux: elsewhere the proxy relays on streams.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { getSocketHandle, TransparentProxy, type ConnectionLog } from '..';
import { stopReading } from '../dist/node-internals';
import { binding } from '../dist/native';
import { handOver, nativeRelayUnavailable, type NativeRelay } from '../dist/proxy/native-relay';
import { isWindows, received, receivedBytes, spy, until } from './helpers';

const HOST = '127.0.0.1';

/** `promise`, or an error naming `what` once `ms` have passed. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer!: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** `n` bytes of a pattern that shows where a byte came from. */
function pattern(n: number, seed: number): Buffer {
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return bytes;
}

/** A SOCKS5 upstream (no authentication) that keeps each half of a connection on its own, as dante does. */
async function socksUpstream(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    sockets.add(client);
    client.on('error', () => {}).on('close', () => sockets.delete(client));
    // Loopback: the greeting and the request each come as one chunk (the proxy waits for each answer).
    client.once('data', () => {
      client.write(Buffer.from([5, 0]));
      client.once('data', (request: Buffer) => {
        const target = net.connect({ port: request.readUInt16BE(request.length - 2), host: HOST, allowHalfOpen: true }, () => {
          client.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]));
          client.pipe(target);
          target.pipe(client);
        });
        sockets.add(target);
        target.on('error', () => client.destroy()).on('close', () => sockets.delete(target));
      });
    });
  });
  const port = await listening(server);
  return {
    port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

async function listening(server: net.Server): Promise<number> {
  server.listen(0, HOST);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/**
 * A pair as the proxy has it: `inbound` accepted (paused) from `client`, `out`
 * connected to `server`'s `peer`.
 */
async function pair() {
  const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  const back = net.createServer({ allowHalfOpen: true });
  const [frontPort, backPort] = [await listening(front), await listening(back)];
  const client = net.connect({ port: frontPort, host: HOST, allowHalfOpen: true });
  const [inbound] = (await once(front, 'connection')) as [net.Socket];
  const out = net.connect({ port: backPort, host: HOST, allowHalfOpen: true });
  const [peer] = (await once(back, 'connection')) as [net.Socket];
  if (out.connecting) await once(out, 'connect');
  const close = () => {
    for (const socket of [client, inbound, out, peer]) socket.destroy();
    front.close();
    back.close();
  };
  return { client, inbound, out, peer, close };
}

describe('the native relay', function () {
  this.timeout(30_000);

  before(function () {
    const why = nativeRelayUnavailable();
    if (why) {
      console.warn(`    !!! ${why}: connections are relayed on streams here, so the native relay's own tests are NOT run (Linux runs them)`);
      this.skip();
    }
  });

  for (const spliced of [false, true]) {
    const how = spliced ? 'sent after 1 MiB (the direction on its splice pipe by then)' : 'queued with the bytes around it before the hand-over';
    it(`TCP urgent data (MSG_OOB) ${how}: the bytes after its mark go on at once, not at the idle timeout (Linux)`, async function () {
      if (isWindows) this.skip(); // Linux's reads stop at the urgent mark, splice(2) does not pass it; Node cannot send MSG_OOB, python3 does
      if (spawnSync('python3', ['-c', '']).status !== 0) {
        console.warn('    !!! python3 is not on PATH (node-gyp needs it too): urgent data is NOT tested here');
        this.skip();
      }
      const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
      const back = net.createServer({ allowHalfOpen: true });
      const [frontPort, backPort] = [await listening(front), await listening(back)];
      const prefix = spliced ? 1 << 20 : 0;
      // Not spliced: all of it waits in the relay's socket before the hand-over, so a read stops short at the mark with
      // "cdef" behind it. Spliced: the relay is moving the megabyte through its pipe when the mark comes.
      const script = [
        'import socket,sys,time',
        `s=socket.create_connection(("${HOST}",${frontPort}))`,
        spliced ? 's.recv(1)' : '',
        `s.sendall(b"p"*${prefix})`,
        's.send(b"ab")',
        's.send(b"!",socket.MSG_OOB)',
        's.send(b"cdef")',
        'sys.stdout.write("sent\\n");sys.stdout.flush()',
        spliced ? '' : 's.recv(1)',
        's.shutdown(socket.SHUT_WR)',
        'time.sleep(5)',
      ].join('\n');
      const python = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const [inbound] = (await once(front, 'connection')) as [net.Socket];
      const out = net.connect({ port: backPort, host: HOST, allowHalfOpen: true });
      const [peer] = (await once(back, 'connection')) as [net.Socket];
      try {
        if (out.connecting) await once(out, 'connect');
        if (!spliced) {
          await once(python.stdout!, 'data');
          await new Promise((resolve) => setTimeout(resolve, 100)); // the three segments in the relay's socket
        }
        const atPeer = new Promise<string>((resolve) => {
          let text = '';
          peer.on('data', (chunk) => {
            text += chunk;
            if (text.length >= prefix + 6) resolve(text.slice(prefix));
          });
        });
        const relay = handOver(inbound, out, undefined, { idleTimeout: 20_000, halfCloseTimeout: 0 }) as NativeRelay;
        if (spliced) peer.write('x'); // its go; the other case's client ends only once "cdef" has arrived (its FIN would wake the relay)
        const late = new Promise<string>((resolve) => setTimeout(() => resolve('nothing within 5 s'), 5_000));
        assert.equal(await Promise.race([atPeer, late]), 'abcdef', 'the urgent byte is out of band; the rest arrives in order');
        if (!spliced) peer.write('x');
        await once(peer, 'end');
        peer.end();
        assert.equal((await relay.ended).code, undefined);
      } finally {
        python.kill();
        for (const socket of [inbound, out, peer]) socket.destroy();
        front.close();
        back.close();
      }
    });
  }

  it('a pair handed over with bytes still in both net.Sockets and a sniffed replay: every byte arrives once, in order, both ways', async function () {
    const { client, inbound, out, peer, close } = await pair();
    try {
      peer.write('down-early;');
      await until(() => out.readableLength > 0, 'bytes from the destination to wait in the outbound net.Socket');
      client.write('up-early;');
      inbound.read(0); // Node reads into the paused socket's buffer, as a sniff leaves it
      await until(() => inbound.readableLength > 0, 'bytes from the client to wait in the accepted net.Socket');
      const relay = handOver(inbound, out, Buffer.from('replay;'), { idleTimeout: 10_000, halfCloseTimeout: 10_000 });
      assert.notEqual(typeof relay, 'string', String(relay));
      const atPeer = received(peer);
      const atClient = received(client);
      client.end('up-late');
      peer.end('down-late');
      assert.equal(await atPeer, 'replay;up-early;up-late');
      assert.equal(await atClient, 'down-early;down-late');
      const end = await (relay as NativeRelay).ended;
      assert.deepEqual(end, { bytesUp: 'replay;up-early;up-late'.length, bytesDown: 'down-early;down-late'.length, code: undefined });
    } finally {
      close();
    }
  });

  it('destroyed during the hand-over, with a megabyte still to write: ends once, closes both peers, no crash', async function () {
    const { client, inbound, out, peer, close } = await pair();
    try {
      const relay = handOver(inbound, out, Buffer.alloc(1 << 20, 1), { idleTimeout: 0, halfCloseTimeout: 0 }) as NativeRelay;
      assert.equal(typeof relay.destroy, 'function');
      relay.destroy();
      relay.destroy(); // idempotent
      const end = await relay.ended;
      assert.equal(end.code, undefined);
      assert.ok(end.bytesUp <= 1 << 20);
      // The relay's duplicates are gone; Node's own descriptors close the connection.
      for (const socket of [client, peer]) socket.on('error', () => {}).resume();
      const ends = [client, peer].map((socket) => new Promise((resolve) => socket.once('end', resolve).once('close', resolve)));
      inbound.destroy();
      out.destroy();
      await Promise.all(ends);
    } finally {
      close();
    }
  });

  it('one that has ended by itself, its end not yet reported: destroy() answers false and changes nothing, the end keeps its own code', async function () {
    const { client, inbound, out, peer, close } = await pair();
    try {
      for (const socket of [client, peer]) socket.on('error', () => {});
      const relay = handOver(inbound, out, undefined, { idleTimeout: 0, halfCloseTimeout: 0 }) as NativeRelay;
      // From a timer: the reset lands before this iteration's poll, where the relay meets it and ends; its end
      // is reported in the close phase after, so the check phase between (setImmediate) sees it ended, unreported.
      const answer = await new Promise<boolean>((resolve) =>
        setTimeout(() => {
          peer.resetAndDestroy();
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
          setImmediate(() => resolve(relay.destroy()));
        }, 10),
      );
      const end = await relay.ended;
      assert.equal(answer, false, 'destroy() ended a relay that had ended by itself');
      assert.equal(end.code, 'ECONNRESET');
    } finally {
      close();
    }
  });

  it('a destination that stops reading: the sender is held back (bounded memory), and every byte arrives once it reads again', async function () {
    const { client, inbound, out, peer, close } = await pair();
    try {
      peer.pause();
      const relay = handOver(inbound, out, undefined, { idleTimeout: 0, halfCloseTimeout: 0 }) as NativeRelay;
      const chunk = Buffer.alloc(256 * 1024, 7);
      const offered = 512 * 1024 * 1024;
      let flushed = 0;
      let written = 0;
      const rss = process.memoryUsage().rss;
      // Write while the kernel takes it; stop once nothing has been taken for 300 ms.
      let last = Date.now();
      while (written < offered && Date.now() - last < 300) {
        if (client.writableLength < 4 * chunk.length) {
          written += chunk.length;
          client.write(chunk, () => {
            flushed += chunk.length;
            last = Date.now();
          });
        } else await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // Kernel buffers on four sockets and one relay buffer: megabytes, not the half gigabyte offered.
      assert.ok(flushed < 48 * 1024 * 1024, `${flushed} bytes went before the sender was held back`);
      assert.ok(process.memoryUsage().rss - rss < 96 * 1024 * 1024, 'the process grew by more than 96 MB');
      let arrived = 0;
      peer.on('data', (data: Buffer) => (arrived += data.length));
      peer.resume();
      client.end();
      await once(peer, 'end');
      assert.equal(arrived, written);
      peer.end();
      const end = await relay.ended;
      assert.equal(end.bytesUp, written);
      assert.equal(end.code, undefined);
    } finally {
      close();
    }
  });

  it('a worker thread that ends with native relays open (process.exit, terminate): they end with it, their peers see the close, the process goes on', async function () {
    // The worker accepts this thread's clients and relays each natively to this thread's server, a megabyte waiting
    // in each (the server does not read); then it ends. Its relays' duplicates must be closed with it.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const net = require('node:net');
      const { once } = require('node:events');
      const { handOver } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'proxy', 'native-relay'))});
      let relays = 0;
      const front = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, async (inbound) => {
        const out = net.connect(workerData.backPort, '127.0.0.1').on('error', () => {});
        await once(out, 'connect');
        const relay = handOver(inbound, out, Buffer.alloc(1 << 20, 1), { idleTimeout: 0, halfCloseTimeout: 0 });
        if (typeof relay !== 'string' && ++relays === 4) parentPort.postMessage('relaying');
      });
      front.listen(0, '127.0.0.1', () => parentPort.postMessage(front.address().port));
      parentPort.on('message', () => process.exit(0));`;
    const peers: net.Socket[] = [];
    const back = net.createServer({ allowHalfOpen: true }, (socket) => peers.push(socket.on('error', () => {}).pause()));
    const backPort = await listening(back);
    try {
      for (const end of ['exit', 'terminate']) {
        peers.length = 0;
        const worker = new Worker(code, { eval: true, workerData: { backPort } });
        const exited = once(worker, 'exit');
        const [frontPort] = (await within(once(worker, 'message'), 10_000, 'the worker to listen')) as [number];
        const relaying = within(once(worker, 'message'), 10_000, 'the worker to relay');
        const clients = Array.from({ length: 4 }, () => net.connect(frontPort, HOST).on('error', () => {}));
        for (const client of clients) client.resume().write('x');
        await relaying;
        await until(() => peers.length === 4, 'the four outbound connections');
        const closed = [...clients, ...peers].map((socket) => new Promise((resolve) => socket.once('close', resolve).once('end', resolve)));
        if (end === 'exit') worker.postMessage('exit');
        else void worker.terminate();
        await within(exited, 10_000, `the worker to end (${end})`);
        for (const peer of peers) peer.resume(); // what arrived of the megabyte, then the end
        await within(Promise.all(closed), 10_000, `the relayed connections to close once the worker ended (${end})`);
        for (const socket of [...clients, ...peers]) socket.destroy();
      }
    } finally {
      back.close();
    }
    // This thread's own relays go on.
    const { client, inbound, out, peer, close } = await pair();
    try {
      const relay = handOver(inbound, out, undefined, { idleTimeout: 0, halfCloseTimeout: 0 }) as NativeRelay;
      const atPeer = received(peer);
      client.end('after the workers');
      assert.equal(await atPeer, 'after the workers');
      peer.end();
      assert.equal((await relay.ended).code, undefined);
    } finally {
      close();
    }
  });

  it('refuses a pair JavaScript still writes to, leaving it as it was', async function () {
    const { inbound, out, close } = await pair();
    try {
      out.cork();
      out.write('pending');
      assert.match(String(handOver(inbound, out, undefined, { idleTimeout: 0, halfCloseTimeout: 0 })), /writes pending/);
      assert.equal(out.writableLength, 7);
    } finally {
      close();
    }
  });

  it('refuses one socket given as both ends (ERR_INVALID_ARG_TYPE) and takes nothing: the socket goes on working', async function () {
    const { client, inbound, close } = await pair();
    try {
      const socket = getSocketHandle(inbound);
      assert.throws(() => binding.relayStart!(socket, socket, 0, 0, undefined, undefined, () => {}), { code: 'ERR_INVALID_ARG_TYPE', message: /two different sockets/ });
      const echoed = once(client, 'data');
      inbound.resume();
      inbound.on('data', (chunk: Buffer) => inbound.write(chunk));
      client.write('still here');
      assert.equal(String((await echoed)[0]), 'still here');
    } finally {
      close();
    }
  });
});

interface RelayAddon {
  relayStart(a: number, b: number, idle: number, half: number, up: Uint8Array | undefined, down: Uint8Array | undefined, done: (up: number, down: number, code?: string) => void): number;
  relayDestroy(id: number): boolean;
}

// The same engine and binding built with 1 KiB buffers (test/native
// wfp_relay_small): a read takes at most 1 KiB, so bytes queued in the kernel
// before the relay starts make a known number of reads, and the FIN after them
// lands on a known one. The engine reads a direction at most a fixed number
// of times per wake-up; a FIN found by the last read of that budget must be
// passed on as well as one found earlier.
describe('the native relay, with a FIN found by any read of a wake-up (the engine built with 1 KiB buffers)', function () {
  this.timeout(60_000);
  const file = join(__dirname, '..', 'test', 'native', ...(isWindows ? ['build-win32'] : ['build', 'Release']), 'wfp_relay_small.node');
  let addon: RelayAddon;

  before(function () {
    if (nativeRelayUnavailable()) this.skip(); // said once by the describe above
    assert.ok(existsSync(file), `${file} is not built: run \`${isWindows ? "npm run build:win32" : "npm run build:conformance"}\``);
    addon = require(file) as RelayAddon;
  });

  /**
   * A pair whose client sent `up` and its FIN, and whose server sent `down`
   * and its FIN, all waiting in the kernel when the relay starts; what each
   * end received and how the relay ended.
   */
  async function exchange(up: Buffer, down: Buffer) {
    const { client, inbound, out, peer, close } = await pair();
    try {
      // Node reads neither relayed socket from here on (the outbound one it would read the server's bytes from).
      const [a, b] = [stopReading(inbound), stopReading(out)];
      if (typeof a === 'string' || typeof b === 'string') throw new Error(`could not stop reading: ${a} ${b}`);
      // Windows: _handle.fd is -1; the relay takes the SOCKETs, which the addon finds by their addresses.
      const [socketA, socketB] = isWindows ? [getSocketHandle(inbound), getSocketHandle(out)] : [a, b];
      assert.equal(inbound.readableLength + out.readableLength, 0, 'Node read bytes before it was stopped');
      const atPeer = receivedBytes(peer);
      const atClient = receivedBytes(client);
      await Promise.all([new Promise<void>((resolve) => client.end(up, () => resolve())), new Promise<void>((resolve) => peer.end(down, () => resolve()))]);
      // Loopback delivers during the write itself; the wait only makes sure.
      await new Promise((resolve) => setTimeout(resolve, 20));
      let calls = 0;
      const ended = new Promise<{ up: number; down: number; code?: string }>((resolve) => {
        addon.relayStart(socketA, socketB, 0, 0, undefined, undefined, (bytesUp, bytesDown, code) => {
          calls++;
          resolve({ up: bytesUp, down: bytesDown, code });
        });
      });
      const what = `${up.length} bytes up, ${down.length} down`;
      const [gotUp, gotDown, end] = await within(Promise.all([atPeer, atClient, ended]), 5000, `both FINs to arrive and the relay to end (${what})`);
      await new Promise((resolve) => setImmediate(resolve));
      return { gotUp, gotDown, end, calls };
    } finally {
      close();
    }
  }

  it('uploads and answers of 1 to 40 KiB, each with its FIN queued behind: every byte arrives, then the FIN, and the relay ends once without an error', async function () {
    for (let kib = 1; kib <= 40; kib++) {
      const [up, down] = [pattern(kib * 1024, kib), pattern(kib * 1024 - 1, kib + 100)];
      const { gotUp, gotDown, end, calls } = await exchange(up, down);
      assert.ok(gotUp.equals(up), `${kib} KiB up: ${gotUp.length} bytes arrived, not the same`);
      assert.ok(gotDown.equals(down), `${kib} KiB down: ${gotDown.length} bytes arrived, not the same`);
      assert.deepEqual(end, { up: up.length, down: down.length, code: undefined });
      assert.equal(calls, 1);
    }
  });
});

describe('TransparentProxy relaying natively and on streams', function () {
  this.timeout(30_000);
  let server: net.Server;
  let serverPort: number;
  const onServer: Array<(socket: net.Socket) => void> = [];

  before(async function () {
    server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {});
      (onServer.shift() ?? ((s: net.Socket) => s.pipe(s)))(socket);
    });
    serverPort = await listening(server);
  });
  after(() => server.close());

  async function proxyWith(options: Partial<ConstructorParameters<typeof TransparentProxy>[0]>) {
    const logs: ConnectionLog[] = [];
    const warnings: string[] = [];
    const proxy = new TransparentProxy({
      listen: { host: HOST, port: 0 },
      destination: { kind: 'upstream', upstream: { host: HOST, port: serverPort } },
      log: (entry) => logs.push(entry),
      warn: (line) => warnings.push(line),
      ...options,
    });
    return { proxy, port: (await proxy.listen()).port, logs, warnings };
  }

  // The native engine three ways: accepting, connecting and relaying in the
  // addon (nothing decided per connection; the specs that sniff or go through
  // an upstream are handed over all the same; Windows accepts in JavaScript and
  // hands over), handed each connection after JavaScript decided it (a route
  // hook), and handed it mid-stream, after its first bytes went on streams
  // (nativeAfter 1, the path of Windows' default, 256 KiB).
  const variants = [
    { title: "relay: 'native', accepted natively where nothing is decided per connection", engine: 'native', options: { relay: 'native', nativeAfter: 0 } },
    { title: "relay: 'native', handed over after a route hook", engine: 'native', options: { relay: 'native', nativeAfter: 0, route: () => undefined } },
    { title: "relay: 'native', handed over mid-stream after its first byte (nativeAfter 1)", engine: 'native', options: { relay: 'native', nativeAfter: 1, route: () => undefined } },
    { title: "relay: 'streams'", engine: 'streams', options: { relay: 'streams' } },
  ] as const;
  for (const { title, engine, options } of variants) {
    describe(title, function () {
      let starts: ReturnType<typeof spy>[] = [];
      beforeEach(function () {
        if (engine === 'native' && nativeRelayUnavailable()) this.skip();
        // Windows has relayStart only: JavaScript accepts there, and hands every connection over.
        const present = (['relayStart', 'relayConnect', 'relayGroupListen'] as const).filter((name) => typeof binding[name] === 'function');
        starts = nativeRelayUnavailable() ? [] : present.map((name) => spy(name));
      });
      afterEach(() => starts.forEach((started) => started.restore()));
      // `halfClosedEarly`: the client sends its FIN with its first bytes; mid-stream, the pair may then finish on
      // streams (a pair half-closed before the switch does, by design), so either engine is right.
      const engineUsed = (halfClosedEarly = false) => {
        if (halfClosedEarly && options.relay === 'native' && options.nativeAfter > 0) return;
        // Calls that returned a relay's id (or, relayGroupListen, true): a refused one (it throws) relays on streams.
        const calls = starts.reduce((sum, started) => sum + started.calls.filter((call) => typeof call.result === 'number' || call.result === true).length, 0);
        if (starts.length) assert.equal(calls > 0, engine === 'native', `the native relay was started ${calls} times`);
      };

      it('both sides half-closing: the client ends, the server answers after that and ends too; logged without error', async function () {
        onServer.push((socket) => {
          let got = '';
          socket.on('data', (data) => (got += data));
          socket.on('end', () => socket.end(`pong after ${got}`));
        });
        const { proxy, port, logs } = await proxyWith({ ...options });
        try {
          const client = net.connect({ port, host: HOST, allowHalfOpen: true });
          const answer = received(client);
          client.end('ping');
          assert.equal(await answer, 'pong after ping');
          client.end();
          await until(() => logs.length === 1, 'the log line');
          assert.equal(logs[0].error, undefined);
          assert.equal(logs[0].bytesUp, 4);
          assert.equal(logs[0].bytesDown, 'pong after ping'.length);
          engineUsed();
        } finally {
          await proxy.shutdown(0);
        }
      });

      it('with sniff on, the bytes the sniff read go to the destination first, then the rest, each once', async function () {
        const { proxy, port, logs } = await proxyWith({ ...options, sniff: { maxBytes: 64, timeoutMs: 300 } });
        try {
          const request = `GET / HTTP/1.1\r\nHost: example.test\r\n\r\n${'body;'.repeat(2000)}`;
          const client = net.connect({ port, host: HOST, allowHalfOpen: true });
          const answer = received(client);
          client.end(request);
          assert.equal(await answer, request);
          await until(() => logs.length === 1, 'the log line');
          assert.equal(logs[0].domain, 'example.test');
          assert.equal(logs[0].bytesUp, request.length);
          engineUsed(true);
        } finally {
          await proxy.shutdown(0);
        }
      });

      it('with sniff on and a decision that takes a while: an upload Node read in several buffers meanwhile (the first cut by the sniff and put back) arrives whole, in order', async function () {
        // Node 26's read() without a size handed over only the first of those buffers: 64 KiB of every such upload were lost.
        const { proxy, port, logs } = await proxyWith({ ...options, sniff: { maxBytes: 1000, timeoutMs: 300 }, route: () => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 50)) });
        try {
          const upload = pattern(2 * 1024 * 1024, 5);
          const client = net.connect({ port, host: HOST, allowHalfOpen: true });
          const answer = receivedBytes(client);
          client.end(upload);
          const echoed = await answer;
          assert.equal(createHash('sha256').update(echoed).digest('hex'), createHash('sha256').update(upload).digest('hex'), `${echoed.length} of ${upload.length} bytes came back`);
          await until(() => logs.length === 1, 'the log line');
          assert.equal(logs[0].bytesUp, upload.length);
          engineUsed();
        } finally {
          await proxy.shutdown(0);
        }
      });

      it("uploads of every size around the read budget (4 reads of 64 KiB a wake-up, then splice past 256 KiB) and beyond, each ended before the answer: the server gets every byte and the FIN, the client the answer", async function () {
        // A behaviour both engines must have. The FIN on the budget's last read itself is shown by the 1 KiB build
        // above: here the server shares this process's loop, so the relay cannot write 15 x 64 KiB in one wake-up.
        const KIB64 = 64 * 1024;
        const sizes = [0, 1, KIB64 - 1, KIB64, KIB64 + 1, 3 * KIB64, 4 * KIB64 - 1, 4 * KIB64, 4 * KIB64 + 1, 5 * KIB64, 8 * KIB64 + 1, 16 * KIB64, 4 << 20];
        for (let i = 0; i < sizes.length; i++) {
          onServer.push((socket) => {
            const hash = createHash('sha256');
            let got = 0;
            socket.on('data', (data: Buffer) => {
              got += data.length;
              hash.update(data);
            });
            socket.on('end', () => socket.end(`${got} ${hash.digest('hex')}`));
          });
        }
        const { proxy, port, logs } = await proxyWith({ ...options });
        try {
          await Promise.all(
            sizes.map(async (size, i) => {
              const upload = pattern(size, i);
              const client = net.connect({ port, host: HOST, allowHalfOpen: true });
              const answer = received(client);
              client.end(upload);
              assert.equal(await within(answer, 20_000, `the answer to ${size} bytes`), `${size} ${createHash('sha256').update(upload).digest('hex')}`);
            }),
          );
          await until(() => logs.length === sizes.length, 'the log lines');
          assert.deepEqual(logs.map((entry) => entry.error), sizes.map(() => undefined));
          assert.deepEqual(logs.map((entry) => entry.bytesUp).sort((x, y) => x - y), sizes);
          engineUsed();
        } finally {
          await proxy.shutdown(0);
        }
      });

      it('a server that stops reading: the client is held back (megabytes, not the half gigabyte offered), and every byte arrives once it reads again', async function () {
        let atServer!: net.Socket;
        onServer.push((socket) => {
          atServer = socket;
          socket.pause();
        });
        const { proxy, port, logs } = await proxyWith({ ...options });
        try {
          const client = net.connect({ port, host: HOST, allowHalfOpen: true });
          const answer = received(client);
          await once(client, 'connect');
          await until(() => atServer !== undefined, 'the outbound connection');
          const chunk = Buffer.alloc(256 * 1024, 7);
          let flushed = 0;
          let written = 0;
          // Write while the kernel takes it; stop once nothing has been taken for 300 ms.
          let last = Date.now();
          while (written < 512 * 1024 * 1024 && Date.now() - last < 300) {
            if (client.writableLength < 4 * chunk.length) {
              written += chunk.length;
              client.write(chunk, () => {
                flushed += chunk.length;
                last = Date.now();
              });
            } else await new Promise((resolve) => setTimeout(resolve, 5));
          }
          assert.ok(flushed < 48 * 1024 * 1024, `${flushed} bytes went before the client was held back`);
          let arrived = 0;
          atServer.on('data', (data: Buffer) => (arrived += data.length));
          atServer.on('end', () => atServer.end(`${arrived}`));
          atServer.resume();
          client.end();
          assert.equal(await within(answer, 20_000, 'the answer'), `${written}`);
          await until(() => logs.length === 1, 'the log line');
          assert.equal(logs[0].error, undefined);
          assert.equal(logs[0].bytesUp, written);
          engineUsed();
        } finally {
          await proxy.shutdown(0);
        }
      });

      it('through an upstream (SOCKS5): the server ends its half first, and what the client sends after that still reaches it', async function () {
        let counted!: (bytes: number) => void;
        const count = new Promise<number>((resolve) => (counted = resolve));
        onServer.push((socket) => {
          let bytes = 0;
          socket.on('data', (data: Buffer) => (bytes += data.length));
          socket.on('end', () => counted(bytes));
          socket.end('hello');
        });
        const socks = await socksUpstream();
        const { proxy, port, logs } = await proxyWith({ ...options, via: `socks5://${HOST}:${socks.port}` });
        try {
          const client = net.connect({ port, host: HOST, allowHalfOpen: true });
          assert.equal(await within(received(client), 5000, "the server's hello and end"), 'hello');
          client.end(Buffer.alloc(100_000, 1));
          assert.equal(await within(count, 5000, 'the server to have the upload and its end'), 100_000);
          await until(() => logs.length === 1, 'the log line');
          assert.equal(logs[0].error, undefined);
          engineUsed();
        } finally {
          await proxy.shutdown(0);
          socks.close();
        }
      });

      it('a client that sent its FIN before the hand-over: the answer that keeps coming for longer than halfCloseTimeout is not cut', async function () {
        onServer.push((socket) => {
          let sent = 0;
          const timer = setInterval(() => {
            socket.write('tick;');
            if (++sent === 8) {
              clearInterval(timer);
              socket.end();
            }
          }, 80);
          socket.on('close', () => clearInterval(timer));
          socket.resume();
        });
        const { proxy, port, logs } = await proxyWith({ ...options, sniff: { maxBytes: 64, timeoutMs: 300 }, halfCloseTimeout: 300, idleTimeout: 300 });
        try {
          const client = net.connect({ port, host: HOST, allowHalfOpen: true });
          const answer = received(client);
          client.end('GET / HTTP/1.1\r\nHost: example.test\r\n\r\n');
          assert.equal(await answer, 'tick;'.repeat(8));
          await until(() => logs.length === 1, 'the log line');
          assert.equal(logs[0].error, undefined);
          engineUsed(true);
        } finally {
          await proxy.shutdown(0);
        }
      });

      it('a connection idle past idleTimeout is closed with ERR_IDLE_TIMEOUT; one half-closed, at halfCloseTimeout with ERR_HALF_CLOSE_TIMEOUT', async function () {
        const { proxy, port, logs } = await proxyWith({ ...options, idleTimeout: 250, halfCloseTimeout: 150 });
        try {
          const idle = net.connect({ port, host: HOST, allowHalfOpen: true }).on('error', () => {});
          const started = Date.now();
          await until(() => idle.destroyed || logs.length > 0, 'the idle connection to close', 5000);
          await until(() => logs.length === 1, 'its log line');
          assert.equal(logs[0].error, 'ERR_IDLE_TIMEOUT');
          assert.ok(Date.now() - started >= 200, `closed after ${Date.now() - started} ms`);
          onServer.push(() => {}); // reads nothing, never ends
          const half = net.connect({ port, host: HOST, allowHalfOpen: true }).on('error', () => {});
          await once(half, 'connect');
          half.end('done');
          await until(() => logs.length === 2, 'the half-closed connection to close', 5000);
          assert.equal(logs[1].error, 'ERR_HALF_CLOSE_TIMEOUT');
          engineUsed();
        } finally {
          await proxy.shutdown(0);
        }
      });

      it('the destination resets: logged as ECONNRESET, the client is closed', async function () {
        onServer.push((socket) => socket.once('data', () => socket.resetAndDestroy()));
        const { proxy, port, logs } = await proxyWith({ ...options });
        try {
          const client = net.connect({ port, host: HOST }).on('error', () => {});
          client.resume();
          client.write('hello');
          await once(client, 'close');
          await until(() => logs.length === 1, 'the log line');
          assert.equal(logs[0].error, 'ECONNRESET');
          engineUsed();
        } finally {
          await proxy.shutdown(0);
        }
      });

      it('the destination answers and resets at once: the client gets the answer (where the OS keeps it: not on Windows), then the close; logged as ECONNRESET', async function () {
        // The answer and the reset reach the proxy's outbound socket together (one tick of this process writes both).
        onServer.push((socket) => socket.once('data', () => socket.write('answer before the reset', () => socket.resetAndDestroy())));
        const { proxy, port, logs } = await proxyWith({ ...options });
        try {
          const client = net.connect({ port, host: HOST }).on('error', () => {});
          let got = '';
          client.on('data', (data) => (got += data));
          client.write('hello');
          await once(client, 'close');
          await until(() => logs.length === 1, 'the log line');
          // Windows drops what a socket received but nobody read yet when a reset
          // arrives (Winsock does; Wine's node.exe showed bytesDown 0): the answer is
          // the OS's to lose there, the close and the code are still the relay's.
          if (isWindows) {
            assert.equal(logs[0].error, 'ECONNRESET');
            assert.equal(logs[0].bytesDown, got.length, 'what the log counts is what the client got');
            return;
          }
          assert.equal(got, 'answer before the reset');
          // The native relay reads on to the reset. On streams, Node 22 reports an end there instead (its libuv;
          // 10 of 10 runs logged no error in 22.23.3, ECONNRESET in 24 and 26), so either is taken from it.
          if (engine === 'native' || Number(process.versions.node.split('.')[0]) >= 24) assert.equal(logs[0].error, 'ECONNRESET');
          else assert.ok(logs[0].error === undefined || logs[0].error === 'ECONNRESET', String(logs[0].error));
          assert.equal(logs[0].bytesDown, 'answer before the reset'.length);
          engineUsed();
        } finally {
          await proxy.shutdown(0);
        }
      });

      it('the client resets: logged as ECONNRESET, the outbound connection is closed too', async function () {
        let atServer!: net.Socket;
        onServer.push((socket) => {
          atServer = socket;
          socket.resume();
        });
        const { proxy, port, logs } = await proxyWith({ ...options });
        try {
          const client = net.connect({ port, host: HOST }).on('error', () => {});
          client.write('hello');
          await until(() => atServer !== undefined, 'the outbound connection');
          // The outbound connection ends (FIN) or is reset: either way the server hears of it.
          const closed = new Promise((resolve) => atServer.once('end', resolve).once('close', resolve));
          await new Promise((resolve) => setTimeout(resolve, 20));
          client.resetAndDestroy();
          await closed;
          await until(() => logs.length === 1, 'the log line');
          assert.equal(logs[0].error, 'ECONNRESET');
          engineUsed();
        } finally {
          await proxy.shutdown(0);
        }
      });

      it('shutdown with relays open: cuts them at the deadline, counts them, logs each ERR_PROXY_SHUTDOWN, closes every client', async function () {
        const { proxy, port, logs } = await proxyWith({ ...options });
        const clients = await Promise.all(
          Array.from({ length: 5 }, async () => {
            const client = net.connect({ port, host: HOST }).on('error', () => {});
            const echo = once(client, 'data');
            client.write('x');
            await echo;
            return client;
          }),
        );
        assert.equal(proxy.connections, 5);
        assert.equal(await proxy.shutdown(100), 5);
        await Promise.all(clients.map((client) => (client.closed ? undefined : once(client, 'close'))));
        await until(() => logs.length === 5, 'five log lines');
        assert.ok(logs.every((entry) => entry.bytesUp === 1 && entry.bytesDown === 1 && entry.error === 'ERR_PROXY_SHUTDOWN'), JSON.stringify(logs));
        assert.equal(proxy.connections, 0);
        engineUsed();
      });
    });
  }

  for (const nativeAfter of [0, 1]) {
    it(`where the native relay refuses a pair (nativeAfter ${nativeAfter}: ${nativeAfter ? 'mid-stream' : 'once set up'}), falls back to streams for it and says so once`, async function () {
      if (nativeRelayUnavailable()) this.skip();
      const refusing = spy('relayStart', () => {
        throw Object.assign(new Error('no'), { code: 'EMFILE' });
      });
      // A route hook: connections are decided in JavaScript and handed over (relayStart), not accepted natively.
      const { proxy, port, logs, warnings } = await proxyWith({ relay: 'native', nativeAfter, route: () => undefined, idleTimeout: 400 });
      try {
        for (let i = 0; i < 3; i++) {
          const client = net.connect({ port, host: HOST, allowHalfOpen: true });
          const answer = received(client);
          // Mid-stream the first bytes set the hand-over off; what follows must still go both ways, on streams again.
          const first = once(client, 'data');
          client.write(`hello ${i}`);
          await first;
          client.end(' more');
          assert.equal(await answer, `hello ${i} more`);
        }
        // A refused pair keeps its idle timeout: one that goes quiet is closed at idleTimeout, as on streams.
        const quiet = net.connect({ port, host: HOST, allowHalfOpen: true }).on('error', () => {});
        const echoed = once(quiet, 'data');
        quiet.write('then nothing');
        await echoed;
        await until(() => logs.length === 4, 'four log lines (the quiet one cut at idleTimeout)', 5000);
        assert.deepEqual(logs.map((entry) => entry.error), [undefined, undefined, undefined, 'ERR_IDLE_TIMEOUT']);
        assert.equal(refusing.calls.length, 4);
        // (Under Wine the proxy also says, once, that Winsock has no WFP redirect IOCTLs.)
        const aboutRelaying = warnings.filter((warning) => !warning.includes('WFP redirect IOCTLs'));
        assert.deepEqual(aboutRelaying, ['connections are relayed on JavaScript streams, not natively: the native relay refused the pair (EMFILE)']);
        assert.ok(logs.slice(0, 3).every((entry) => entry.bytesUp === 12 && entry.bytesDown === 12), JSON.stringify(logs));
      } finally {
        refusing.restore();
        await proxy.shutdown(0);
      }
    });
  }

  it("a socket the route hook kept, destroyed by the program after the hand-over, ends the native relay: the client sees its end, one log line", async function () {
    if (nativeRelayUnavailable()) this.skip();
    const starts = spy('relayStart');
    let kept: net.Socket | undefined;
    const { proxy, port, logs } = await proxyWith({
      relay: 'native',
      nativeAfter: 0,
      route: ({ socket }) => {
        kept = socket;
        return undefined;
      },
    });
    try {
      const client = net.connect({ port, host: HOST, allowHalfOpen: true }).on('error', () => {});
      const echoed = once(client, 'data');
      client.write('ping');
      await echoed;
      assert.equal(starts.calls.length, 1, 'the pair was handed over');
      // The program's own decision, later: this connection must go. Nothing in the proxy fails it.
      kept!.destroy();
      await until(() => client.readableEnded, "the client to see the connection's end", 5000);
      await until(() => logs.length === 1, 'the log line');
      assert.equal(logs[0].bytesUp, 4);
    } finally {
      starts.restore();
      await proxy.shutdown(0);
    }
  });

  it('mid-stream under back-pressure both ways (an echo server, a client that reads slowly): no stall, every byte back in order, logged without error', async function () {
    if (nativeRelayUnavailable()) this.skip();
    // A switch mid-stream while both directions are under back-pressure: every byte back, in order, nothing stalled.
    // (It does not reproduce the stall a switch that waited for the queues with both sockets paused could meet: with
    // this load the queues are empty when the switch comes, and that earlier design passes it too.)
    const { proxy, port, logs } = await proxyWith({ relay: 'native', nativeAfter: 64 * 1024, route: () => undefined });
    try {
      const sent = pattern(4 * 1024 * 1024, 5);
      const client = net.connect({ port, host: HOST, allowHalfOpen: true });
      const chunks: Buffer[] = [];
      let got = 0;
      client.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        got += chunk.length;
        client.pause();
        setTimeout(() => client.resume(), 1);
      });
      client.end(sent);
      await until(() => got >= sent.length, 'the whole echo', 60_000);
      assert.ok(Buffer.concat(chunks).equals(sent), 'the echo differs from what was sent');
      await until(() => client.closed, 'the client to close (both FINs)');
      await until(() => logs.length === 1, 'the log line');
      assert.equal(logs[0].error, undefined);
      assert.equal(logs[0].bytesUp, sent.length);
    } finally {
      await proxy.shutdown(0);
    }
  });

  it(`nativeAfter's default, ${isWindows ? '256 KiB on Windows: a short connection stays on streams, a bulk one is handed over' : '0 on Linux: every connection is handed over once set up'}`, async function () {
    if (nativeRelayUnavailable()) this.skip();
    const starts = spy('relayStart');
    const { proxy, port, logs } = await proxyWith({ relay: 'native', route: () => undefined });
    try {
      const handedAfter: number[] = [];
      for (const size of [1024, 1024 * 1024]) {
        const client = net.connect({ port, host: HOST, allowHalfOpen: true });
        const answer = receivedBytes(client);
        client.end(pattern(size, 3));
        assert.equal((await answer).length, size);
        handedAfter.push(starts.calls.length);
      }
      await until(() => logs.length === 2, 'two log lines');
      assert.deepEqual(handedAfter, isWindows ? [0, 1] : [1, 2], 'relayStart calls after the 1 KiB and after the 1 MiB connection');
      assert.ok(logs.every((entry) => entry.error === undefined));
    } finally {
      starts.restore();
      await proxy.shutdown(0);
    }
  });

  it('refuses a relay engine it does not know', function () {
    const base = { listen: { host: HOST, port: 0 }, destination: { kind: 'upstream' as const, upstream: { host: HOST, port: 1 } } };
    assert.throws(() => new TransparentProxy({ ...base, relay: 'fast' as 'native' }), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.relay/ });
  });
});
