import assert from 'node:assert/strict';
import {
  isSupported,
  MAX_BLOB_SIZE,
  queryRedirectContext,
  queryRedirectContextSync,
  queryRedirectRecords,
  queryRedirectRecordsSync,
  setRedirectRecords,
  setRedirectRecordsSync,
  SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT,
  SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS,
  SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS,
  WfpRedirectError,
  getSocketHandle,
} from '..';
import { binding } from '../dist/native';
import { isWindows, Loopback, rejection, thrown, type Pair } from './helpers';

describe('control codes', function () {
  it('are the values of the Windows SDK (mstcpip.h), in TypeScript and in the addon alike', function () {
    assert.equal(SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, 0x980000dc);
    assert.equal(SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, 0x980000dd);
    assert.equal(SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, 0x980000de);
    assert.equal(binding.SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS);
    assert.equal(binding.SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT);
    assert.equal(binding.SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS);
    assert.equal(binding.MAX_BLOB_SIZE, MAX_BLOB_SIZE);
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

const ioctls = [
  { name: 'SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS', async: (p: Pair) => queryRedirectRecords(p.accepted), sync: (p: Pair) => queryRedirectRecordsSync(p.accepted) },
  { name: 'SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT', async: (p: Pair) => queryRedirectContext(p.accepted), sync: (p: Pair) => queryRedirectContextSync(p.accepted) },
  { name: 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS', async: (p: Pair) => setRedirectRecords(p.client, Buffer.from([1, 2, 3])), sync: (p: Pair) => setRedirectRecordsSync(p.client, Buffer.from([1, 2, 3])) },
  { name: 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS on a raw OS socket', async: (p: Pair) => setRedirectRecords(getSocketHandle(p.client), new Uint8Array([9])), sync: (p: Pair) => setRedirectRecordsSync(getSocketHandle(p.client), new Uint8Array([9])) },
] as const;

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

  for (const ioctl of ioctls) {
    const ioctlName = ioctl.name.split(' ')[0];
    for (const form of ['async', 'sync'] as const) {
      it(`${ioctl.name} (${form}) fails with ERR_WFP_UNSUPPORTED_PLATFORM after finding the socket`, async function () {
        const error = form === 'async' ? await rejection(ioctl.async(pair)) : thrown(() => ioctl.sync(pair));
        assert.ok(error instanceof WfpRedirectError, String(error));
        assert.equal(error.code, 'ERR_WFP_UNSUPPORTED_PLATFORM');
        assert.equal(error.syscall, 'WSAIoctl');
        assert.equal(error.ioctl, ioctlName);
        assert.equal(error.errno, undefined);
        assert.match(error.message, /Windows 8 \/ Windows Server 2012/);
      });
    }
  }
});
