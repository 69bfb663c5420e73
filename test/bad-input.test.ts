import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  getOriginalDestination,
  getSocketHandle,
  MAX_BLOB_SIZE,
  queryRedirectContext,
  queryRedirectContextSync,
  queryRedirectRecords,
  queryRedirectRecordsSync,
  setRedirectRecords,
  setRedirectRecordsSync,
  WfpRedirectError,
} from '..';
import { binding } from '../dist/native';
import { probe } from './conformance';
import { isWindows, Loopback, rejection, thrown, type Pair } from './helpers';

type AnyFn = (socket: any) => unknown;

const RECORDS = Buffer.from([1, 2, 3, 4]);
/** Every public function that takes a socket, with valid other arguments. */
const socketTakers: Array<{ name: string; call: AnyFn; async: boolean }> = [
  { name: 'getSocketHandle', call: (s) => getSocketHandle(s), async: false },
  { name: 'queryRedirectRecordsSync', call: (s) => queryRedirectRecordsSync(s), async: false },
  { name: 'queryRedirectContextSync', call: (s) => queryRedirectContextSync(s), async: false },
  { name: 'queryRedirectRecords', call: (s) => queryRedirectRecords(s), async: true },
  { name: 'queryRedirectContext', call: (s) => queryRedirectContext(s), async: true },
  { name: 'getOriginalDestination', call: (s) => getOriginalDestination(s), async: true },
];

/** Calls `fn` the way its form demands and returns the error: async forms must not throw synchronously. */
async function failureOf(taker: { call: AnyFn; async: boolean }, arg: unknown): Promise<any> {
  if (!taker.async) return thrown(() => taker.call(arg));
  let promise: unknown;
  assert.doesNotThrow(() => {
    promise = taker.call(arg);
  }, 'an async function threw synchronously');
  assert.ok(promise instanceof Promise);
  return rejection(promise);
}

function assertCode(error: any, type: new (...args: any[]) => Error, code: string): void {
  const typed = error as { code?: unknown; message: string };
  assert.ok(error instanceof type, `expected ${type.name}, got ${error?.constructor?.name}: ${error?.message}`);
  assert.equal(typed.code, code, typed.message);
  assert.ok(typed.message.length > 20, `message too terse: ${typed.message}`);
}

describe('bad input', function () {
  let loopback: Loopback;
  let pair: Pair;

  before(async () => {
    loopback = await Loopback.listen('IPv4');
    pair = await loopback.pair();
  });
  after(async () => loopback.close());

  const notSockets: Array<[string, () => unknown]> = [
    ['undefined', () => undefined],
    ['null', () => null],
    ['a string', () => '127.0.0.1:80'],
    ['a plain object that looks like a socket', () => ({ remoteAddress: '127.0.0.1', remotePort: 1, localAddress: '127.0.0.1', localPort: 2 })],
    ['a stream that is not a socket', () => new PassThrough()],
    ['a UDP socket', () => dgram.createSocket('udp4')],
    ['a net.Server', () => net.createServer()],
  ];

  for (const taker of socketTakers) {
    describe(taker.name, function () {
      for (const [label, make] of notSockets) {
        it(`refuses ${label} with ERR_INVALID_ARG_TYPE`, async function () {
          const arg = make();
          assertCode(await failureOf(taker, arg), TypeError, 'ERR_INVALID_ARG_TYPE');
          if (arg instanceof dgram.Socket) arg.close();
        });
      }

      it('refuses a socket that is not connected yet with ERR_WFP_SOCKET_NOT_CONNECTED', async function () {
        assertCode(await failureOf(taker, new net.Socket()), WfpRedirectError, 'ERR_WFP_SOCKET_NOT_CONNECTED');
        const connecting = net.connect(loopback.port, '127.0.0.1');
        connecting.on('error', () => {});
        assert.equal(connecting.connecting, true);
        assertCode(await failureOf(taker, connecting), WfpRedirectError, 'ERR_WFP_SOCKET_NOT_CONNECTED');
        connecting.destroy();
      });

      it('refuses a destroyed socket with ERR_WFP_SOCKET_CLOSED', async function () {
        const { accepted, client } = await loopback.pair();
        getSocketHandle(accepted); // resolved and cached while it was open
        accepted.destroy();
        client.destroy();
        assertCode(await failureOf(taker, accepted), WfpRedirectError, 'ERR_WFP_SOCKET_CLOSED');
        assertCode(await failureOf(taker, client), WfpRedirectError, 'ERR_WFP_SOCKET_CLOSED');
      });
    });
  }

  describe('a pipe-based net.Socket', function () {
    let server: net.Server;
    let client: net.Socket;
    let accepted: net.Socket;

    before(async () => {
      const path = isWindows ? `\\\\.\\pipe\\wfp-redirect-test-${process.pid}` : join(tmpdir(), `wfp-redirect-${process.pid}.sock`);
      server = net.createServer().listen(path);
      await once(server, 'listening');
      client = net.connect(path);
      [[accepted]] = await Promise.all([once(server, 'connection'), once(client, 'connect')]);
    });
    after(() => {
      client.destroy();
      accepted.destroy();
      server.close();
    });

    for (const taker of socketTakers) {
      it(`${taker.name} refuses it with ERR_WFP_NOT_TCP_SOCKET`, async function () {
        assertCode(await failureOf(taker, accepted), WfpRedirectError, 'ERR_WFP_NOT_TCP_SOCKET');
        assertCode(await failureOf(taker, client), WfpRedirectError, 'ERR_WFP_NOT_TCP_SOCKET');
      });
    }
  });

  /** The setters, on the OS socket of a connected socket (what they are given is checked before any call). */
  const setters: Array<{ name: string; call: AnyFn; async: boolean }> = [
    { name: 'setRedirectRecordsSync', call: (s) => setRedirectRecordsSync(s, RECORDS), async: false },
    { name: 'setRedirectRecords', call: (s) => setRedirectRecords(s, RECORDS), async: true },
  ];

  for (const setter of setters) {
    it(`${setter.name} refuses a net.Socket with ERR_INVALID_ARG_TYPE, pointing to connectRedirected`, async function () {
      const error = await failureOf(setter, pair.client);
      assertCode(error, TypeError, 'ERR_INVALID_ARG_TYPE');
      assert.match(error.message, /connectRedirected/);
      for (const [, make] of notSockets.slice(0, 4)) assertCode(await failureOf(setter, make()), TypeError, 'ERR_INVALID_ARG_TYPE');
    });
  }

  describe('records', function () {
    const notBytes: Array<[string, unknown]> = [
      ['a string', 'records'],
      ['an array of numbers', [1, 2, 3]],
      ['an ArrayBuffer', new ArrayBuffer(4)],
      ['a Uint16Array', new Uint16Array(2)],
      ['a Uint8ClampedArray', new Uint8ClampedArray(2)],
      ['a DataView', new DataView(new ArrayBuffer(4))],
      ['null', null],
    ];
    for (const setter of setters) {
      const call = (records: unknown) =>
        setter.async
          ? setRedirectRecords(getSocketHandle(pair.client), records as Uint8Array)
          : setRedirectRecordsSync(getSocketHandle(pair.client), records as Uint8Array);
      const failure = async (records: unknown) =>
        failureOf({ async: setter.async, call: () => call(records) }, undefined);

      for (const [label, value] of notBytes) {
        it(`${setter.name} refuses ${label} with ERR_INVALID_ARG_TYPE`, async function () {
          assertCode(await failure(value), TypeError, 'ERR_INVALID_ARG_TYPE');
        });
      }
      it(`${setter.name} refuses empty records with RangeError ERR_WFP_RECORDS_EMPTY`, async function () {
        assertCode(await failure(new Uint8Array(0)), RangeError, 'ERR_WFP_RECORDS_EMPTY');
      });
      it(`${setter.name} refuses records of a detached buffer with ERR_WFP_RECORDS_EMPTY`, async function () {
        const records = new Uint8Array(8);
        structuredClone(records.buffer, { transfer: [records.buffer] });
        assertCode(await failure(records), RangeError, 'ERR_WFP_RECORDS_EMPTY');
      });
      it(`${setter.name} refuses records over ${MAX_BLOB_SIZE} bytes with RangeError ERR_WFP_BLOB_TOO_LARGE`, async function () {
        assertCode(await failure(Buffer.alloc(MAX_BLOB_SIZE + 1)), RangeError, 'ERR_WFP_BLOB_TOO_LARGE');
      });
    }
  });

  describe('raw OS sockets', function () {
    const badNumbers: Array<[string, number]> = [
      ['-1', -1],
      ['1.5', 1.5],
      ['NaN', NaN],
      ['Infinity', Infinity],
      ['2^53', 2 ** 53],
    ];
    for (const [label, value] of badNumbers) {
      it(`setRedirectRecords refuses ${label} with RangeError ERR_OUT_OF_RANGE`, async function () {
        assertCode(await rejection(setRedirectRecords(value, RECORDS)), RangeError, 'ERR_OUT_OF_RANGE');
        assertCode(thrown(() => setRedirectRecordsSync(value, RECORDS)), RangeError, 'ERR_OUT_OF_RANGE');
      });
    }

    it('a number past the platform\'s range never reaches the OS as another socket (2^32 + a live descriptor)', async function () {
      const { client } = await loopback.pair();
      const handle = getSocketHandle(client);
      const alias = 2 ** 32 + handle;
      if (!isWindows) {
        // A descriptor is an int: the alias would be truncated to the live socket.
        assertCode(thrown(() => binding.closeSocket(alias)), RangeError, 'ERR_OUT_OF_RANGE');
        assertCode(thrown(() => setRedirectRecordsSync(alias, RECORDS)), RangeError, 'ERR_OUT_OF_RANGE');
      } else {
        // A SOCKET is 64 bits wide: the alias is some other, invalid, socket.
        binding.closeSocket(alias);
      }
      assert.equal(probe.describeSocket(handle).localPort, client.localPort, 'the live socket was closed through its alias');
      assert.equal(getSocketHandle(client), handle);
    });

    // What this shows is limited: on Linux no OS call is made (no IOCTLs), and
    // Wine checks the control code before the socket. Only a real Windows
    // reaches the socket, where the answer must be a typed WSA error.
    it('a closed OS socket: a typed WfpRedirectError, never a crash', async function () {
      const { client } = await loopback.pair();
      const handle = getSocketHandle(client);
      client.destroy();
      await once(client, 'close');
      const error = await rejection(setRedirectRecords(handle, RECORDS));
      assert.ok(error instanceof WfpRedirectError, String(error));
      assert.equal(error.ioctl, 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS');
      assert.equal(error.syscall, isWindows ? 'WSAIoctl' : undefined);
      if (!isWindows) assert.equal(error.code, 'ERR_WFP_UNSUPPORTED_PLATFORM');
      // Wine checks the control code before the handle, so it answers WSAEOPNOTSUPP for any handle.
      else if (process.env.WFP_REDIRECT_UNDER_WINE === '1') assert.equal(error.code, 'WSAEOPNOTSUPP');
      else assert.ok(typeof error.errno === 'number' && /^WSA/.test(error.code), `${error.code} ${error.errno}`);
    });
  });

  describe('the raw binding, misused directly', function () {
    const misuses: Array<[string, () => unknown, string]> = [
      ['getSocketHandle()', () => (binding.getSocketHandle as AnyFn)(undefined), 'ERR_INVALID_ARG_TYPE'],
      ['getSocketHandle with a bad address', () => binding.getSocketHandle('not-an-ip', 1, '127.0.0.1', 2), 'ERR_OUT_OF_RANGE'],
      ['getSocketHandle with port 0', () => binding.getSocketHandle('127.0.0.1', 0, '127.0.0.1', 2), 'ERR_OUT_OF_RANGE'],
      ['getSocketHandle with port 70000', () => binding.getSocketHandle('127.0.0.1', 70000, '127.0.0.1', 2), 'ERR_OUT_OF_RANGE'],
      ['queryRedirectRecords("x")', () => (binding.queryRedirectRecords as AnyFn)('x'), 'ERR_INVALID_ARG_TYPE'],
      ['queryRedirectContext(-5)', () => binding.queryRedirectContext(-5), 'ERR_OUT_OF_RANGE'],
      ['setRedirectRecords(3, "x")', () => (binding.setRedirectRecords as (a: number, b: unknown) => void)(3, 'x'), 'ERR_INVALID_ARG_TYPE'],
      ['setRedirectRecords(3, empty)', () => binding.setRedirectRecords(3, new Uint8Array(0)), 'ERR_WFP_RECORDS_EMPTY'],
      ['setRedirectRecords(3, too large)', () => binding.setRedirectRecords(3, new Uint8Array(MAX_BLOB_SIZE + 1)), 'ERR_WFP_BLOB_TOO_LARGE'],
      ['setErrorClass(42)', () => (binding.setErrorClass as AnyFn)(42), 'ERR_INVALID_ARG_TYPE'],
    ];
    for (const [label, misuse, code] of misuses) {
      it(`${label} throws ${code}, no crash`, function () {
        const error = thrown(misuse);
        assert.ok(error instanceof Error);
        assert.equal((error as { code?: unknown }).code, code, error.message);
      });
    }

    it('finds no socket for addresses nobody has, with ERR_WFP_SOCKET_NOT_FOUND', function () {
      const error = thrown(() => binding.getSocketHandle('127.0.0.1', 1, '127.0.0.1', 2));
      assertCode(error, WfpRedirectError, 'ERR_WFP_SOCKET_NOT_FOUND');
    });

    it('asks netfilter about a file that is not a socket: a typed OS error (Linux)', function () {
      if (!binding.hasNetfilter) {
        console.warn('    !!! no netfilter here: the OS-error path of originalDestination is NOT tested');
        this.skip();
      }
      const fd = openSync(__filename, 'r');
      try {
        const error = thrown(() => binding.originalDestination(fd));
        assertCode(error, WfpRedirectError, 'ENOTSOCK');
        assert.equal(error.syscall, 'getsockopt');
        assert.equal(typeof error.errno, 'number');
      } finally {
        closeSync(fd);
      }
    });
  });
});
