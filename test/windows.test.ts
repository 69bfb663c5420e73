// Tests that mean something only on Windows: they run inside Windows node.exe
// (under Wine: `npm run test:win32`, part of `npm test` on Linux) and are
// reported as pending, with a notice, everywhere else.
import assert from 'node:assert/strict';
import { getSocketHandle, isSupported, WfpRedirectError } from '..';
import { failureOfCall, IOCTL_CALLS, isWindows, Loopback, type Pair } from './helpers';

const underWine = process.env.WFP_REDIRECT_UNDER_WINE === '1';

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

  for (const call of IOCTL_CALLS) {
    for (const form of ['async', 'sync'] as const) {
      it(`${call.label} (${form}) reaches WSAIoctl and comes back typed${underWine ? ': WSAEOPNOTSUPP (10045) under Wine' : ''}`, async function () {
        const error = await failureOfCall(call, form, pair);
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
