import assert from 'node:assert/strict';
import {
  isSupported,
  MAX_BLOB_SIZE,
  SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT,
  SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS,
  SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS,
  WfpRedirectError,
} from '..';
import { binding } from '../dist/native';
import { failureOfCall, IOCTL_CALLS, isWindows, Loopback, type Pair } from './helpers';

describe('control codes', function () {
  it('are the values of the Windows SDK (mstcpip.h), and the cap the documented 64 KiB (defined once, in the addon)', function () {
    assert.equal(SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, 0x980000dc);
    assert.equal(SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, 0x980000dd);
    assert.equal(SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, 0x980000de);
    assert.equal(MAX_BLOB_SIZE, 64 * 1024);
  });
});

describe('the addon under test', function () {
  it('is the build this run asked for', function () {
    const expected = process.env.WFP_REDIRECT_EXPECT_BUILD;
    console.log(`      (addon build: ${binding.build})`);
    if (expected) assert.equal(binding.build, expected);
    else assert.ok(['node-gyp', 'cmake-js', 'mingw'].includes(binding.build), binding.build);
  });
});

describe('WfpRedirectError', function () {
  it('is an Error with a name, a code and only the fields it was given', function () {
    const error = new WfpRedirectError('m', { code: 'WSAEINVAL', errno: 10022, syscall: 'WSAIoctl', ioctl: 'SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS' });
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'WfpRedirectError');
    assert.equal(error.message, 'm');
    assert.deepEqual({ ...error }, { code: 'WSAEINVAL', errno: 10022, syscall: 'WSAIoctl', ioctl: 'SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS' });
    assert.deepEqual({ ...new WfpRedirectError('m', { code: 'ERR_WFP_SOCKET_CLOSED' }) }, { code: 'ERR_WFP_SOCKET_CLOSED' });
    assert.match(String(error.stack), /^WfpRedirectError: m/);
  });
});

describe('the IOCTLs where the platform has none', function () {
  let loopback: Loopback;
  let pair: Pair;

  before(async function () {
    if (isWindows) {
      console.warn('    !!! Windows: the unsupported-platform path is not what runs here; the Windows suite checks the real IOCTLs');
      this.skip();
    }
    loopback = await Loopback.listen('IPv4');
    pair = await loopback.pair();
  });
  after(async () => loopback?.close());

  it('isSupported() is false', function () {
    assert.equal(isSupported(), false);
  });

  for (const call of IOCTL_CALLS) {
    for (const form of ['async', 'sync'] as const) {
      it(`${call.label} (${form}) fails with ERR_WFP_UNSUPPORTED_PLATFORM after finding the socket`, async function () {
        const error = await failureOfCall(call, form, pair);
        assert.ok(error instanceof WfpRedirectError, String(error));
        assert.equal(error.code, 'ERR_WFP_UNSUPPORTED_PLATFORM');
        assert.equal(error.syscall, undefined, 'no OS call was made');
        assert.equal(error.ioctl, call.ioctl);
        assert.equal(error.errno, undefined);
        assert.match(error.message, /Windows 8 \/ Windows Server 2012/);
      });
    }
  }
});
