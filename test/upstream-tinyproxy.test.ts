// connectVia through a real HTTP proxy: tinyproxy with Basic auth, started by
// the tests on a free loopback port, CONNECT allowed to the echo port only.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connectVia } from '..';
import { rejection } from './helpers';
import { echoServers, missingBinary, roundTrip, startTinyproxy, type RealServer } from './fixtures/upstream-servers';

describe('connectVia through tinyproxy (HTTP CONNECT, Basic auth)', function () {
  this.timeout(30_000);
  const USER = 'relay';
  const PASSWORD = `pw${randomBytes(6).toString('hex')}`;
  let proxy: RealServer;
  let echo: Awaited<ReturnType<typeof echoServers>>;

  before(async function () {
    const missing = missingBinary('tinyproxy', ['-v']);
    if (missing) {
      console.warn(`    !!! SKIPPED, the HTTP CONNECT tests against a real proxy did NOT run: ${missing}`);
      this.skip();
    }
    echo = await echoServers();
    proxy = await startTinyproxy(USER, PASSWORD, [echo.port]);
  });
  after(async () => {
    await proxy?.stop();
    await echo?.close();
  });

  for (const host of ['127.0.0.1', '::1', 'localhost']) {
    it(`to ${host}: 256 KiB echoed back intact`, async () => {
      const socket = await connectVia(`http://${USER}:${PASSWORD}@127.0.0.1:${proxy.port}`, { host, port: echo.port });
      const sent = randomBytes(256 * 1024);
      assert.ok((await roundTrip(socket, sent)).equals(sent), `the echo differs\n${proxy.log()}`);
      socket.destroy();
    });
  }

  it('the password from passwordEnv', async () => {
    const socket = await connectVia(`http://${USER}@127.0.0.1:${proxy.port}`, { host: '127.0.0.1', port: echo.port }, { passwordEnv: 'P', env: { P: PASSWORD } });
    const sent = randomBytes(100);
    assert.ok((await roundTrip(socket, sent)).equals(sent));
    socket.destroy();
  });

  it('no credentials: ERR_HTTP_PROXY_AUTH_REQUIRED (407)', async () => {
    const error = await rejection(connectVia(`http://127.0.0.1:${proxy.port}`, { host: '127.0.0.1', port: echo.port }));
    assert.equal(error.code, 'ERR_HTTP_PROXY_AUTH_REQUIRED', error.message);
    assert.equal(error.status, 407);
  });

  it('a wrong password: ERR_HTTP_PROXY_AUTH_REQUIRED (tinyproxy answers 401), the password not in the message', async () => {
    const error = await rejection(connectVia(`http://${USER}:x${PASSWORD}@127.0.0.1:${proxy.port}`, { host: '127.0.0.1', port: echo.port }));
    assert.equal(error.code, 'ERR_HTTP_PROXY_AUTH_REQUIRED', error.message);
    assert.ok(!error.message.includes(PASSWORD), error.message);
  });

  it('a port CONNECT is not allowed to: ERR_HTTP_PROXY_STATUS with the status', async () => {
    const error = await rejection(connectVia(`http://${USER}:${PASSWORD}@127.0.0.1:${proxy.port}`, { host: '127.0.0.1', port: echo.port === 65535 ? 65534 : echo.port + 1 }));
    assert.equal(error.code, 'ERR_HTTP_PROXY_STATUS', error.message);
    assert.equal(error.status, 403);
  });
});
