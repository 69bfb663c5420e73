import assert from 'node:assert/strict';
import dns from 'node:dns';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { connectRedirected, getSocketHandle, WfpRedirectError } from '..';
import { binding } from '../dist/native';
import { newTcpHandle, type TcpHandle } from '../dist/node-internals';
import { probe } from './conformance';
import { isWindows, listenOrSkip, LOOPBACK, Loopback, nodeFd, spy, type Family } from './helpers';
import { exchange } from './transfer';

/** How net.connect itself fails in the same situation, for comparison. */
async function netConnectError(options: net.NetConnectOpts): Promise<NodeJS.ErrnoException> {
  const socket = net.connect(options);
  const [error] = await once(socket, 'error');
  return error;
}

for (const family of ['IPv4', 'IPv6'] as Family[]) {
  describe(`connectRedirected over ${family} loopback`, function () {
    this.timeout(60_000);
    let loopback: Loopback;

    before(async function () {
      loopback = await listenOrSkip(this, family, 'connectRedirected');
    });
    after(async () => loopback?.close());

    it('connects on the OS socket the addon created, and carries 50 MB both ways intact', async function () {
      const created = spy('createTcpSocket');
      const accepted = once(loopback.server, 'connection');
      let client: net.Socket;
      try {
        client = connectRedirected({ host: LOOPBACK[family], port: loopback.port, allowHalfOpen: true });
        await once(client, 'connect');
      } finally {
        created.restore();
      }
      assert.equal(created.calls.length, 1);
      const osSocket = created.calls[0].result as number;
      assert.equal(created.calls[0].args[0], family === 'IPv6' ? 6 : 4);
      assert.equal(nodeFd(client), osSocket, 'Node is not reading from the socket the addon created');
      assert.equal(getSocketHandle(client), osSocket);
      const [server] = (await accepted) as [net.Socket];
      await exchange(client, server, 50 * 1024 * 1024);
    });

    it('sets the records on that same socket, before it connects', async function () {
      const created = spy('createTcpSocket');
      const seen: Array<{ osSocket: number; connectedYet: boolean; records: Buffer }> = [];
      const set = spy('setRedirectRecords', (_original, osSocket: number, records: Uint8Array) => {
        let connectedYet = true;
        try {
          probe.describeSocket(osSocket);
        } catch {
          connectedYet = false;
        }
        seen.push({ osSocket, connectedYet, records: Buffer.from(records) });
      });
      const records = Buffer.from('records of the proxied connection');
      let client: net.Socket;
      try {
        client = connectRedirected({ host: LOOPBACK[family], port: loopback.port, redirectRecords: records });
        await once(client, 'connect');
      } finally {
        created.restore();
        set.restore();
      }
      assert.equal(seen.length, 1);
      assert.equal(seen[0].osSocket, created.calls[0].result);
      assert.equal(seen[0].connectedYet, false, 'the records were set after the socket connected');
      assert.ok(seen[0].records.equals(records));
      assert.equal(nodeFd(client), seen[0].osSocket);
      client.write('hello');
      client.end();
    });

    it('fails like net.connect when the connection is refused', async function () {
      const closed = await Loopback.listen(family);
      const port = closed.port;
      await closed.close();
      const expected = await netConnectError({ host: LOOPBACK[family], port });
      const socket = connectRedirected({ host: LOOPBACK[family], port });
      const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
      assert.equal(error.code, expected.code);
      assert.equal(error.code, 'ECONNREFUSED');
      assert.equal(error.syscall, 'connect');
      assert.equal(socket.destroyed, true);
    });
  });
}

describe('connectRedirected, like net.connect', function () {
  let loopback: Loopback;
  before(async () => (loopback = await Loopback.listen('IPv4')));
  after(async () => loopback.close());

  it('resolves a host name first and connects on a socket of its family', async function () {
    const created = spy('createTcpSocket');
    const socket = connectRedirected({ host: 'localhost', port: loopback.port, family: 4 }, () => {});
    try {
      await once(socket, 'connect');
    } finally {
      created.restore();
    }
    assert.equal(socket.remoteAddress, '127.0.0.1');
    assert.deepEqual(created.calls.map((c) => c.args[0]), [4]);
    socket.destroy();
  });

  it("honours `timeout` with a 'timeout' event", async function () {
    const socket = connectRedirected({ host: '127.0.0.1', port: loopback.port, timeout: 150 });
    const started = Date.now();
    await once(socket, 'timeout');
    assert.ok(Date.now() - started >= 100);
    socket.destroy();
  });

  it('honours `signal`: an abort destroys the socket with an AbortError', async function () {
    const controller = new AbortController();
    const socket = connectRedirected({ host: '127.0.0.1', port: loopback.port, signal: controller.signal });
    await once(socket, 'connect');
    controller.abort();
    const [error] = (await once(socket, 'error')) as [Error & { code?: string }];
    assert.equal(error.name, 'AbortError');
    assert.equal(error.code, 'ABORT_ERR');
    assert.equal(socket.destroyed, true);
  });

  it('calls the connect listener and applies noDelay and keepAlive', async function () {
    let called = false;
    const socket = connectRedirected({ host: '127.0.0.1', port: loopback.port, noDelay: true, keepAlive: true }, () => (called = true));
    await once(socket, 'connect');
    assert.equal(called, true);
    socket.destroy();
  });

  it('fails with an error event when libuv cannot adopt the socket, errno the positive OS number', async function () {
    // A number that is no open socket any more: uv_tcp_open refuses it.
    const closedNumber = binding.createTcpSocket(4);
    binding.closeSocket(closedNumber);
    const created = spy('createTcpSocket', () => closedNumber);
    let socket: net.Socket;
    try {
      socket = connectRedirected({ host: '127.0.0.1', port: loopback.port });
    } finally {
      created.restore();
    }
    const [error] = (await once(socket, 'error')) as [WfpRedirectError];
    assert.ok(error instanceof WfpRedirectError, String(error));
    assert.ok(error.errno === undefined || error.errno > 0, `errno ${error.errno}`);
    if (!isWindows) {
      assert.equal(error.syscall, 'uv_tcp_open');
      assert.equal(error.code, 'EBADF');
      assert.equal(error.errno, constants.errno.EBADF);
    }
  });

  it('refuses bad arguments synchronously, as net.connect does, leaving nothing open', function () {
    const created = spy('createTcpSocket');
    try {
      assert.throws(() => connectRedirected({ port: 70000 }), { name: 'RangeError', code: 'ERR_SOCKET_BAD_PORT' });
      assert.throws(() => connectRedirected({ port: -1 }), { code: 'ERR_SOCKET_BAD_PORT' });
      assert.throws(() => connectRedirected(null as never), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => connectRedirected({ port: 1, redirectRecords: 'x' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => connectRedirected({ port: 1, redirectRecords: new Uint8Array(0) }), { code: 'ERR_WFP_RECORDS_EMPTY' });
      assert.throws(() => connectRedirected({ port: 1 }, 'listener' as never), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => connectRedirected({ port: 1, mark: '7' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => connectRedirected({ port: 1, mark: -1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => connectRedirected({ port: 1, mark: 2 ** 32 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      // SO_MARK is Linux's: elsewhere a mark is refused before anything is created.
      if (!binding.hasSocketMark) assert.throws(() => connectRedirected({ port: 1, mark: 7 }), { code: 'ERR_WFP_UNSUPPORTED_PLATFORM' });
    } finally {
      created.restore();
    }
    assert.equal(created.calls.length, 0);
  });
});

describe('connectRedirected with records where the platform has none', function () {
  before(function () {
    if (isWindows) {
      console.warn('    !!! Windows: the unsupported-platform path is not what runs here; the Windows suite checks the real set');
      this.skip();
    }
  });

  for (const host of ['127.0.0.1', 'localhost']) {
    it(`fails with an 'error' event, ERR_WFP_UNSUPPORTED_PLATFORM, never connects, and closes its socket (${host})`, async function () {
      const created = spy('createTcpSocket');
      const closed = spy('closeSocket');
      let connected = false;
      try {
        const socket = connectRedirected({ host, port: 9, family: 4, redirectRecords: Buffer.from([1, 2]) }, () => (connected = true));
        const [error] = (await once(socket, 'error')) as [WfpRedirectError];
        assert.ok(error instanceof WfpRedirectError);
        assert.equal(error.code, 'ERR_WFP_UNSUPPORTED_PLATFORM');
        assert.equal(error.ioctl, 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS');
      } finally {
        created.restore();
        closed.restore();
      }
      assert.equal(connected, false);
      assert.deepEqual(closed.calls.map((c) => c.args[0]), created.calls.map((c) => c.result));
    });
  }
});

/** A port nothing listens on: connections there are refused, so no socket this process accepts can take a closed one's number. */
async function unusedPort(): Promise<number> {
  const closed = await Loopback.listen('IPv4');
  const port = closed.port;
  await closed.close();
  return port;
}

/** Linux: the process's open descriptors, as the kernel counts them. */
function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * Windows: which of these SOCKETs are still open, by whether libuv can adopt
 * them (uv_tcp_open asks the SOCKET for its protocol: ENOTSOCK once closed).
 * WSAIoctl cannot tell: Wine answers WSAEOPNOTSUPP for a closed one too. An
 * open one is then owned by the probe's handle, which closes it. A leaked
 * socket keeps its number, so it is always seen; a closed one's number reused
 * by a new socket would be a false alarm, never a missed leak. Check once:
 * a second look would find closed what the first one closed.
 */
function stillOpen(osSockets: number[]): number[] {
  return [...new Set(osSockets)].filter((osSocket) => {
    const probeHandle = newTcpHandle() as TcpHandle & { close(): void };
    const status = probeHandle.open(osSocket);
    probeHandle.close();
    return status === 0 || getSystemErrorName(status) !== 'ENOTSOCK';
  });
}

/** Whether net has closed and let go of the socket's libuv handle (`_handle` null). */
function handleReleased(socket: net.Socket): boolean {
  return (socket as unknown as { _handle: unknown })._handle === null;
}

/** Polls `check` until it returns true or `ms` pass (closes finish on later turns of the loop). */
async function eventually(check: () => boolean, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

const markAllowed = binding.hasSocketMark && process.getuid?.() === 0;

/**
 * A lookup of 127.0.0.1 that answers through `schedule` and then calls
 * `answered`: the test waits for every answer, since the OS socket is created
 * only then.
 */
function lookupAnswering(schedule: (answer: () => void) => void, answered: () => void): net.LookupFunction {
  return (_hostname, _options, callback) =>
    schedule(() => {
      callback(null, '127.0.0.1', 4);
      answered();
    });
}

// The window of the leak: the lookup answers after destroy() but before the
// handle's close has completed (the same turn of the loop), when the handle
// still accepts an OS socket it will never close (Windows: libuv aborts the
// process with "handle->socket == INVALID_SOCKET").
const beforeCloseCompletes = (answer: () => void) => process.nextTick(answer);
const afterCloseCompleted = (answer: () => void) => setTimeout(answer, 20);

type Start = (port: number, answered: () => void) => net.Socket;

/** Ways to destroy a connectRedirected socket before it has connected: each starts one and destroys it at its step. */
const DESTROYED_EARLY: Array<{ name: string; skip?: string; start: Start }> = [
  {
    name: 'during its lookup, which answers before the close completes',
    start: (port, answered) => connectRedirected({ host: 'localhost', port, lookup: lookupAnswering(beforeCloseCompletes, answered) }).destroy(),
  },
  {
    name: 'during its lookup, which answers after the close completed',
    start: (port, answered) => connectRedirected({ host: 'localhost', port, lookup: lookupAnswering(afterCloseCompleted, answered) }).destroy(),
  },
  {
    name: 'during the real lookup of localhost',
    start: (port, answered) => {
      const lookup: net.LookupFunction = (hostname, options, callback) =>
        dns.lookup(hostname, options, (...answer: Parameters<typeof callback>) => {
          callback(...answer);
          answered();
        });
      return connectRedirected({ host: 'localhost', port, family: 4, lookup }).destroy();
    },
  },
  {
    name: 'by a signal aborted before the call, during its lookup',
    start: (port, answered) => connectRedirected({ host: 'localhost', port, lookup: lookupAnswering(beforeCloseCompletes, answered), signal: AbortSignal.abort() }),
  },
  {
    name: 'by a signal aborted before the call (an IP address: adopted at once)',
    start: (port, answered) => {
      answered();
      return connectRedirected({ host: '127.0.0.1', port, signal: AbortSignal.abort() });
    },
  },
  {
    name: "in its 'lookup' listener: adopted, not connecting yet",
    start: (port, answered) => {
      const socket = connectRedirected({ host: 'localhost', port, lookup: lookupAnswering(beforeCloseCompletes, answered) });
      return socket.once('lookup', () => socket.destroy());
    },
  },
  {
    name: 'while connecting',
    start: (port, answered) => {
      const socket = connectRedirected({ host: 'localhost', port, lookup: lookupAnswering(beforeCloseCompletes, answered) });
      return socket.once('lookup', () => process.nextTick(() => socket.destroy()));
    },
  },
  {
    name: 'with records, during its lookup (setting them fails here)',
    start: (port, answered) =>
      connectRedirected({ host: 'localhost', port, lookup: lookupAnswering(beforeCloseCompletes, answered), redirectRecords: Buffer.from('records') }).destroy(),
  },
  {
    name: 'with a mark, during its lookup',
    skip: markAllowed ? undefined : 'SO_MARK needs Linux and CAP_NET_ADMIN (root)',
    start: (port, answered) => connectRedirected({ host: 'localhost', port, lookup: lookupAnswering(beforeCloseCompletes, answered), mark: 1 }).destroy(),
  },
];

describe('connectRedirected destroyed before it connected leaves no OS socket open', function () {
  this.timeout(30_000);
  const COUNT = 20;
  let port: number;
  before(async () => (port = await unusedPort()));

  for (const scenario of DESTROYED_EARLY) {
    it(`${COUNT} sockets destroyed ${scenario.name}`, async function () {
      if (scenario.skip) {
        console.warn(`    !!! not run: ${scenario.skip}`);
        this.skip();
      }
      const created = spy('createTcpSocket');
      const descriptorsBefore = isWindows ? 0 : openDescriptors();
      try {
        let answers = 0;
        const sockets = Array.from({ length: COUNT }, () => scenario.start(port, () => answers++).on('error', () => {}));
        // 'close' (not events.once, which rejects on the 'error' an abort brings).
        await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.once('close', resolve))));
        assert.ok(await eventually(() => answers === COUNT), `${answers} of ${COUNT} lookups answered`);
        // An abort's first 'close' (Node emits two) comes before net has closed the handle. Up to 15 s: node.exe 22
        // under Wine, with the Linux suites on the same two cores, once had one still held at 2 s (a leak fails all the same).
        assert.ok(await eventually(() => sockets.every(handleReleased), 15_000), 'a destroyed socket still holds its handle');
      } finally {
        created.restore();
      }
      if (isWindows) {
        // Once, not polled: the probe closes what it finds open. libuv closes a
        // SOCKET when the handle's close starts, before its 'close' event.
        const osSockets = created.calls.map((call) => call.result as number);
        assert.deepEqual(stillOpen(osSockets), [], `of the ${osSockets.length} SOCKETs created, these are still open`);
      } else {
        await eventually(() => openDescriptors() <= descriptorsBefore);
        assert.equal(openDescriptors() - descriptorsBefore, 0, `descriptors left open (${created.calls.length} sockets created)`);
      }
    });
  }
});
