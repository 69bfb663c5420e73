// Reliability under races, load, threads and hostile input, with fixed bounds
// and a fixed seed. Every outcome must be an answer about the socket asked
// for, or a typed error: never a crash, never another connection's handle.
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { Worker } from 'node:worker_threads';
import * as api from '..';
import { getSocketHandle, queryRedirectRecords, queryRedirectRecordsSync, setRedirectRecords, WfpRedirectError } from '..';
import { binding } from '../dist/native';
import { probe } from './conformance';
import { isWindows, Loopback, nodeFd, prng, rejection, spy, thrown, type Pair } from './helpers';

const underWine = process.env.WFP_REDIRECT_UNDER_WINE === '1';

/** The codes a query on a socket may end in, short of an answer. */
const TYPED = new Set(['ERR_WFP_UNSUPPORTED_PLATFORM', 'ERR_WFP_SOCKET_CLOSED', 'ERR_WFP_SOCKET_NOT_CONNECTED', 'ERR_WFP_SOCKET_NOT_FOUND', 'WSAEOPNOTSUPP', 'WSAEINVAL', 'WSAENOTCONN', 'WSAENOTSOCK']);

/** Asserts that `osSocket` is, right now, an open socket with the connection's local port (and on POSIX its descriptor). */
function assertOwnHandle(osSocket: number, fdBefore: number, localPort: number): void {
  let local: { port: number };
  try {
    local = probe.describeLocal(osSocket);
  } catch {
    assert.fail(`the addon was asked about OS socket ${osSocket}, which is closed`);
  }
  assert.equal(local.port, localPort, `the addon was asked about OS socket ${osSocket}, which is another socket now (local port ${local.port})`);
  if (!isWindows) assert.equal(osSocket, fdBefore);
}

describe('reliability: 2,000 races between a query and socket.destroy()', function () {
  this.timeout(300_000);
  let loopback: Loopback;
  before(async () => (loopback = await Loopback.listen('IPv4')));
  after(async () => loopback.close());

  const ORDERINGS = [
    'destroy, then query',
    'query, then destroy in the same tick',
    'destroy, its number taken by a new socket in the same tick, then query',
    'first lookup (cached), destroy, its number taken in the same tick, then query',
    'destroy, let its number go to a new connection after the close, then query',
    "query from the 'close' listener",
    'peer resets, then query at once',
    'peer resets, query after the reset arrived',
  ] as const;

  it(`every ordering (${ORDERINGS.length}) ends in an answer about that socket or a typed error; the addon is only ever asked about the connection's own open socket`, async function () {
    const random = prng(0x7ace);
    const counts = new Map<string, number>();
    let answers = 0;
    // The addon stands in for a WFP service that answers every query with the
    // local port of the socket it was asked about, after checking that the
    // socket is the open one the query was for.
    let checkHandle: ((osSocket: number) => void) | undefined;
    const queried = spy('queryRedirectRecords', (_original, osSocket: number) => {
      checkHandle?.(osSocket);
      return Buffer.from(`socket with local port ${probe.describeLocal(osSocket).port}`);
    });
    // Sockets made to take a freed number, closed after each round.
    const takers: number[] = [];
    const takeFreedNumber = (freed: number) => {
      // POSIX hands out the lowest free descriptor: the one just freed. Windows picks its own.
      for (let i = 0; i < 16 && !takers.includes(freed); i++) takers.push(binding.createTcpSocket(4));
      if (!isWindows) assert.equal(takers[0], freed, 'the freed number was not reused: the ordering shows nothing');
    };
    try {
      for (let i = 0; i < 2000; i++) {
        const ordering = ORDERINGS[Math.floor(random() * ORDERINGS.length)];
        counts.set(ordering, (counts.get(ordering) ?? 0) + 1);
        const { accepted, client }: Pair = await loopback.pair();
        const fdBefore = nodeFd(accepted);
        const localPort = accepted.localPort!;
        const expected = Buffer.from(`socket with local port ${localPort}`);
        checkHandle = (osSocket) => assertOwnHandle(osSocket, fdBefore, localPort);
        let outcome: Promise<unknown>;
        switch (ordering) {
          case 'destroy, then query':
            accepted.destroy();
            outcome = queryRedirectRecords(accepted);
            break;
          case 'query, then destroy in the same tick':
            outcome = queryRedirectRecords(accepted);
            accepted.destroy();
            break;
          case 'destroy, its number taken by a new socket in the same tick, then query':
            accepted.destroy();
            if (!isWindows) takeFreedNumber(fdBefore);
            outcome = queryRedirectRecords(accepted);
            break;
          case 'first lookup (cached), destroy, its number taken in the same tick, then query': {
            const handle = getSocketHandle(accepted);
            accepted.destroy();
            takeFreedNumber(handle);
            outcome = queryRedirectRecords(accepted);
            break;
          }
          case 'destroy, let its number go to a new connection after the close, then query': {
            accepted.destroy();
            await once(accepted, 'close');
            const heir = await loopback.pair();
            if (!isWindows) assert.ok([nodeFd(heir.accepted), nodeFd(heir.client)].includes(fdBefore), 'no socket of the new connection got the freed number');
            outcome = queryRedirectRecords(accepted);
            outcome.finally(() => {
              heir.accepted.destroy();
              heir.client.destroy();
            }).catch(() => {});
            break;
          }
          case "query from the 'close' listener":
            outcome = new Promise((resolve) => accepted.once('close', () => resolve(queryRedirectRecords(accepted))));
            accepted.destroy();
            break;
          case 'peer resets, then query at once':
            client.resetAndDestroy();
            outcome = queryRedirectRecords(accepted);
            break;
          case 'peer resets, query after the reset arrived':
            client.resetAndDestroy();
            await Promise.race([once(accepted, 'error'), once(accepted, 'close'), new Promise((r) => setTimeout(r, 50))]);
            outcome = queryRedirectRecords(accepted);
            break;
        }
        try {
          const answer = await outcome;
          assert.ok(Buffer.isBuffer(answer) && answer.equals(expected), `${ordering}: answered "${String(answer)}", not "${expected}"`);
          answers++;
        } catch (error) {
          if (error instanceof assert.AssertionError) throw error;
          assert.ok(error instanceof WfpRedirectError, `${ordering}: ${String(error)}`);
          assert.ok(TYPED.has(error.code), `${ordering}: unexpected code ${error.code}`);
        }
        checkHandle = undefined;
        for (const taker of takers.splice(0)) binding.closeSocket(taker);
        accepted.destroy();
        client.destroy();
      }
    } finally {
      queried.restore();
      for (const taker of takers) binding.closeSocket(taker);
    }
    console.log(`      (${answers} answered, the rest typed errors; ${[...counts.values()].join('/')} per ordering)`);
    assert.equal(counts.size, ORDERINGS.length, 'some ordering never ran');
    assert.ok(answers > 100, `only ${answers} queries were answered: the orderings barely reach the addon`);
  });
});

describe('reliability: queries on new connections while many are open', function () {
  this.timeout(300_000);
  const count = underWine ? 2_000 : 10_000;

  it(`${count.toLocaleString('en')} other connections open: each new one resolves to its own socket`, async function () {
    if (underWine) console.warn('    !!! Wine: 2,000 connections held open instead of 10,000 (Wine sockets are slow); Linux runs 10,000');
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const held: net.Socket[] = [];
    const hold = (socket: net.Socket) => {
      socket.on('error', () => {});
      held.push(socket);
    };
    server.on('connection', hold);
    // The other ends live in a helper process, so this one carries `count` sockets, not twice that.
    const child = fork(join(__dirname, 'fixtures', 'hold-connections.js'), [String((server.address() as net.AddressInfo).port), String(count)]);
    try {
      await once(child, 'message');
      while (held.length < count) await new Promise((resolve) => setImmediate(resolve));
      server.off('connection', hold);
      const loopback = await Loopback.listen('IPv4');
      try {
        for (let i = 0; i < 200; i++) {
          const { accepted, client } = await loopback.pair();
          for (const socket of [accepted, client]) {
            const handle = getSocketHandle(socket);
            assertOwnHandle(handle, nodeFd(socket), socket.localPort!);
            const error = await rejection(queryRedirectRecords(socket));
            assert.ok(error instanceof WfpRedirectError && TYPED.has(error.code), String(error));
          }
          accepted.destroy();
          client.destroy();
        }
      } finally {
        await loopback.close();
      }
    } finally {
      child.disconnect();
      for (const socket of held) socket.destroy();
      server.close();
    }
  });
});

describe('reliability: queries from several worker threads at once', function () {
  this.timeout(120_000);

  it('4 workers, 50 connections each, every answer about the worker\'s own socket', async function () {
    const workers = Array.from({ length: 4 }, () => new Worker(join(__dirname, 'fixtures', 'worker-sockets.js'), { workerData: { pairs: 50 } }));
    const exited = Promise.all(workers.map((worker) => once(worker, 'exit')));
    const results = await Promise.all(workers.map(async (worker) => (await once(worker, 'message'))[0] as { ok: boolean; handles?: number[]; error?: string }));
    await exited;
    for (const result of results) {
      assert.ok(result.ok, result.error);
      assert.equal(result.handles?.length, 100);
      assert.equal(new Set(result.handles).size, 100);
    }
  });
});

describe('reliability: hostile input', function () {
  let loopback: Loopback;
  let pair: Pair;
  before(async () => {
    loopback = await Loopback.listen('IPv4');
    pair = await loopback.pair();
  });
  after(async () => loopback.close());

  it('works with any `this`: detached, bound to nonsense, called on the module', async function () {
    const detached = api.getSocketHandle;
    const expected = getSocketHandle(pair.accepted);
    assert.equal(detached(pair.accepted), expected);
    assert.equal(api.getSocketHandle.call({ nonsense: true }, pair.accepted), expected);
    assert.equal(Reflect.apply(api.getSocketHandle, null, [pair.accepted]), expected);
    const error = await rejection(api.queryRedirectRecords.call(42 as never, pair.accepted));
    assert.ok(error instanceof WfpRedirectError);
    const raw = thrown(() => binding.queryRedirectRecords.call(undefined, -1));
    assert.equal(raw.code, 'ERR_OUT_OF_RANGE');
  });

  it('huge and negative numbers as raw OS sockets: typed errors, never a crash', async function () {
    {
      const error = await rejection(setRedirectRecords(0, Buffer.from([1])));
      assert.ok(error instanceof WfpRedirectError, `0: ${String(error)}`);
    }
    for (const value of [-1, -(2 ** 53), 2 ** 53, Number.MAX_VALUE, -0.5]) {
      const error = await rejection(setRedirectRecords(value, Buffer.from([1])));
      assert.ok(error instanceof RangeError, `${value}: ${String(error)}`);
      assert.equal((error as { code?: string }).code, 'ERR_OUT_OF_RANGE');
    }
    // Past a POSIX descriptor's range (an int) only on POSIX; a Windows SOCKET is 64 bits wide.
    for (const value of [2 ** 53 - 1, 2 ** 40, 0xffffffff, 2 ** 31]) {
      const error = await rejection(setRedirectRecords(value, Buffer.from([1])));
      if (!isWindows) {
        assert.ok(error instanceof RangeError, `${value}: ${String(error)}`);
        assert.equal((error as { code?: string }).code, 'ERR_OUT_OF_RANGE');
        continue;
      }
      assert.ok(error instanceof WfpRedirectError, `${value}: ${String(error)}`);
      assert.equal(error.syscall, 'WSAIoctl');
      assert.ok(typeof error.errno === 'number', `${value}: ${error.code}`);
    }
  });

  it('frozen, sealed, shared and detached buffers as records', async function () {
    const frozen = Object.freeze(new Uint8Array(0));
    assert.equal((await rejection(setRedirectRecords(getSocketHandle(pair.client), frozen))).code, 'ERR_WFP_RECORDS_EMPTY');
    const sealedBytes = Object.preventExtensions(new Uint8Array([1, 2, 3]));
    const shared = new Uint8Array(new SharedArrayBuffer(8));
    for (const records of [sealedBytes, shared, Buffer.from([7])]) {
      const error = await rejection(setRedirectRecords(getSocketHandle(pair.client), records));
      assert.ok(error instanceof WfpRedirectError, String(error));
    }
    const detachedRecords = new Uint8Array(16);
    structuredClone(detachedRecords.buffer, { transfer: [detachedRecords.buffer] });
    assert.equal((await rejection(setRedirectRecords(getSocketHandle(pair.client), detachedRecords))).code, 'ERR_WFP_RECORDS_EMPTY');
  });

  it('a net.Socket subclass is a net.Socket', async function () {
    class TracedSocket extends net.Socket {}
    const socket = new TracedSocket();
    socket.connect(loopback.port, '127.0.0.1');
    await once(socket, 'connect');
    const handle = getSocketHandle(socket);
    if (!isWindows) assert.equal(handle, nodeFd(socket));
    const error = thrown(() => queryRedirectRecordsSync(socket));
    assert.ok(error instanceof WfpRedirectError);
    socket.destroy();
  });

  it('a TLS socket resolves to its underlying TCP socket, on both ends', async function () {
    const key = readFileSync(join(__dirname, '..', 'test', 'fixtures', 'tls-key.pem'));
    const cert = readFileSync(join(__dirname, '..', 'test', 'fixtures', 'tls-cert.pem'));
    const server = tls.createServer({ key, cert });
    let rawFd = -2;
    let rawHandle = -2;
    server.on('connection', (raw: net.Socket) => {
      rawFd = nodeFd(raw);
      rawHandle = getSocketHandle(raw);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const secured = once(server, 'secureConnection');
    const client = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
    await once(client, 'secureConnect');
    const [serverSide] = (await secured) as [tls.TLSSocket];
    assert.equal(getSocketHandle(serverSide), rawHandle);
    if (!isWindows) assert.equal(rawHandle, rawFd);
    const clientHandle = getSocketHandle(client);
    assert.notEqual(clientHandle, rawHandle);
    const seen = probe.describeSocket(clientHandle);
    assert.equal(seen.localPort, client.localPort);
    const error = await rejection(queryRedirectRecords(serverSide));
    assert.ok(error instanceof WfpRedirectError && TYPED.has(error.code), String(error));
    client.destroy();
    serverSide.destroy();
    server.close();
  });
});
