// Tests that mean something only on Windows: they run inside Windows node.exe
// (under Wine: `npm run test:win32`, part of `npm test` on Linux) and are
// reported as pending, with a notice, everywhere else.
import assert from 'node:assert/strict';
import {
  getSocketHandle,
  isSupported,
  queryRedirectContext,
  queryRedirectContextSync,
  queryRedirectRecords,
  queryRedirectRecordsSync,
  setRedirectRecords,
  setRedirectRecordsSync,
  WfpRedirectError,
} from '..';
import { isWindows, Loopback, rejection, thrown, type Pair } from './helpers';

const underWine = process.env.WFP_REDIRECT_UNDER_WINE === '1';
const RECORDS = Buffer.from('opaque redirect records');

describe('Windows only', function () {
  let loopback: Loopback;
  let pair: Pair;

  before(async function () {
    if (!isWindows) {
      console.warn('    !!! not Windows: these tests are NOT run here; `npm run test:win32` runs them in Windows node.exe under Wine');
      this.skip();
    }
    loopback = await Loopback.listen('IPv4');
    pair = await loopback.pair();
  });
  after(async () => loopback?.close());

  it('_handle.fd is -1 for accepted and connected sockets: Node cannot give the SOCKET, hence the lookup', function () {
    for (const socket of [pair.accepted, pair.client]) {
      assert.equal((socket as unknown as { _handle: { fd: number } })._handle.fd, -1);
      assert.ok(getSocketHandle(socket) > 0);
    }
  });

  it('isSupported() is true on Windows 8 and later', function () {
    assert.equal(isSupported(), true);
  });

  const calls = [
    { ioctl: 'SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS', async: () => queryRedirectRecords(pair.accepted), sync: () => queryRedirectRecordsSync(pair.accepted) },
    { ioctl: 'SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT', async: () => queryRedirectContext(pair.accepted), sync: () => queryRedirectContextSync(pair.accepted) },
    { ioctl: 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS', async: () => setRedirectRecords(pair.client, RECORDS), sync: () => setRedirectRecordsSync(pair.client, RECORDS) },
  ] as const;

  for (const call of calls) {
    for (const form of ['async', 'sync'] as const) {
      it(`${call.ioctl} (${form}) reaches WSAIoctl and comes back typed${underWine ? ': WSAEOPNOTSUPP (10045) under Wine' : ''}`, async function () {
        const error = form === 'async' ? await rejection(call.async()) : thrown(call.sync);
        assert.ok(error instanceof WfpRedirectError, String(error));
        assert.equal(error.syscall, 'WSAIoctl');
        assert.equal(error.ioctl, call.ioctl);
        if (underWine) {
          // Wine implements none of the three IOCTLs: the documented answer of a provider without them.
          assert.equal(error.code, 'WSAEOPNOTSUPP');
          assert.equal(error.errno, 10045);
          assert.match(error.message, /does not support this IOCTL/);
        } else {
          // A real Windows without a redirect driver: some documented error, typed.
          assert.equal(typeof error.errno, 'number');
          assert.match(error.code, /^(WSA|ERROR_|ERR_WFP_)/);
        }
      });
    }
  }
});
