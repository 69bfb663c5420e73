// Tests that mean something only on Windows: they run inside Windows node.exe
// (under Wine: `npm run test:win32`, part of `npm test` on Linux) and are
// reported as pending, with a notice, everywhere else.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import { basename, dirname, join } from 'node:path';
import { connectRedirected, getSocketHandle, isSupported, WfpRedirectError } from '..';
import { binding } from '../dist/native';
import { failureOfCall, IOCTL_CALLS, isWindows, Loopback, nodeFd, spy, type Pair } from './helpers';
import { exchange } from './transfer';

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

  it(`runs in the host this run asked for (${process.env.WFP_REDIRECT_EXPECT_HOST ?? 'node.exe'}), with the production addon loaded`, function () {
    // In a renamed node.exe, with no node.exe in its folder, the addon must find Node-API in the host itself.
    const expected = process.env.WFP_REDIRECT_EXPECT_HOST ?? 'node.exe';
    assert.equal(basename(process.execPath).toLowerCase(), expected.toLowerCase());
    if (expected.toLowerCase() !== 'node.exe') assert.ok(!existsSync(join(dirname(process.execPath), 'node.exe')), 'a node.exe sits next to the host');
    assert.equal(binding.build, 'mingw');
  });

  it('_handle.fd is -1 for accepted and connected sockets: Node cannot give the SOCKET, hence the lookup', function () {
    for (const socket of [pair.accepted, pair.client]) {
      assert.equal(nodeFd(socket), -1);
      assert.ok(getSocketHandle(socket) > 0);
    }
  });

  it('isSupported() follows the Windows version: false before Windows 8 (NT 6.2), true from it on', function () {
    // The version comes from os.release(); each release string stands in for a Windows.
    assert.equal(binding.hasRedirectIoctls, true, 'the Windows build must have the IOCTLs');
    const realRelease = os.release;
    const answers: Record<string, boolean> = {};
    try {
      for (const release of ['6.1.7601', '6.2.9200', '6.3.9600', '10.0.19045', '10.0.26100', '5.1.2600', '']) {
        os.release = () => release;
        answers[release] = isSupported();
      }
    } finally {
      os.release = realRelease;
    }
    assert.deepEqual(answers, {
      '6.1.7601': false, // Windows 7
      '6.2.9200': true, // Windows 8
      '6.3.9600': true, // Windows 8.1
      '10.0.19045': true,
      '10.0.26100': true,
      '5.1.2600': false, // XP
      '': false,
    });
    // And this host (under Wine, the Windows version Wine reports).
    const [major, minor] = os.release().split('.').map(Number);
    assert.equal(isSupported(), major > 6 || (major === 6 && minor >= 2), os.release());
  });

  for (const call of IOCTL_CALLS) {
    for (const form of ['async', 'sync'] as const) {
      it(`${call.label} (${form}) reaches WSAIoctl and comes back typed${underWine ? ': WSAEOPNOTSUPP (10045) under Wine' : ''}`, async function () {
        const error = await failureOfCall(call, form, pair);
        assert.ok(error instanceof WfpRedirectError, String(error));
        // syscall is set only when the call was made and failed (never for a failure found before it).
        assert.equal(error.syscall, 'WSAIoctl');
        assert.equal(error.ioctl, call.ioctl);
        if (underWine) {
          // Wine implements none of the three IOCTLs: the documented answer of a provider without them.
          // Nothing in this package makes up 10045: it can only be WSAGetLastError's answer.
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

  it(`connectRedirected with records fails from the set IOCTL${underWine ? ' with WSAEOPNOTSUPP (10045) under Wine' : ''}, and closes its socket`, async function () {
    const closed = spy('closeSocket');
    let connected = false;
    try {
      const socket = connectRedirected({ host: '127.0.0.1', port: loopback.port, redirectRecords: Buffer.from('records') }, () => (connected = true));
      const [error] = (await once(socket, 'error')) as [WfpRedirectError];
      assert.ok(error instanceof WfpRedirectError, String(error));
      assert.equal(error.ioctl, 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS');
      assert.equal(error.syscall, 'WSAIoctl');
      if (underWine) assert.equal(error.code, 'WSAEOPNOTSUPP');
    } finally {
      closed.restore();
    }
    assert.equal(connected, false);
    assert.equal(closed.calls.length, 1);
  });

  it('connectRedirected without records connects through the adopted SOCKET (_handle.fd) and carries data', async function () {
    const created = spy('createTcpSocket');
    const accepted = once(loopback.server, 'connection');
    let client: net.Socket;
    try {
      client = connectRedirected({ host: '127.0.0.1', port: loopback.port, allowHalfOpen: true });
      await once(client, 'connect');
    } finally {
      created.restore();
    }
    const osSocket = created.calls[0].result as number;
    assert.equal(nodeFd(client), osSocket);
    assert.equal(getSocketHandle(client), osSocket);
    const [server] = (await accepted) as [net.Socket];
    await exchange(client, server, 4 * 1024 * 1024);
  });
});
