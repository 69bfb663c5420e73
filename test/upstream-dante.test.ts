// connectVia and associateUdp through a real SOCKS5 server: dante's danted,
// started by the tests on free loopback ports (no-auth, and RFC 1929 with a
// system user the test creates), to local echo servers, bytes checked both ways.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import type net from 'node:net';
import { associateUdp, connectVia, type Socks5UdpAssociation } from '..';
import { rejection } from './helpers';
import { addSystemUser, echoServers, missingBinary, roundTrip, startDante, type RealServer } from './fixtures/upstream-servers';

const MISSING = missingBinary('danted', ['-v']);

function skipIfMissing(context: Mocha.Context): void {
  if (MISSING) {
    console.warn(`    !!! SKIPPED, the SOCKS5 tests against a real server did NOT run: ${MISSING}`);
    context.skip();
  }
}

/** A UDP echo server on `host`. */
async function udpEcho(host: string): Promise<{ port: number; socket: dgram.Socket }> {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', (message, remote) => socket.send(message, remote.port, remote.address));
  socket.bind(0, host);
  await once(socket, 'listening');
  return { port: socket.address().port, socket };
}

/** The next datagram the association delivers, within 5 s. */
function nextMessage(association: Socks5UdpAssociation): Promise<[Buffer, { address: string; port: number; family: string; size: number }]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no datagram back through the association in 5 s')), 5000);
    association.once('message', (payload, remote) => (clearTimeout(timer), resolve([payload, remote])));
  });
}

describe('connectVia through dante (SOCKS5, no authentication)', function () {
  this.timeout(30_000);
  let dante: RealServer;
  let echo: Awaited<ReturnType<typeof echoServers>>;
  const open: net.Socket[] = [];

  before(async function () {
    skipIfMissing(this);
    dante = await startDante('none');
    echo = await echoServers();
  });
  after(async () => {
    for (const socket of open) socket.destroy();
    await dante?.stop();
    await echo?.close();
  });

  const CASES = [
    { name: 'socks5:// to an IPv4 destination', scheme: 'socks5', upstreamHost: '127.0.0.1', host: '127.0.0.1' },
    { name: 'socks5:// to an IPv6 destination', scheme: 'socks5', upstreamHost: '127.0.0.1', host: '::1' },
    { name: 'socks5:// over IPv6 to the upstream', scheme: 'socks5', upstreamHost: '[::1]', host: '127.0.0.1' },
    { name: 'socks5:// with a name resolved here', scheme: 'socks5', upstreamHost: '127.0.0.1', host: 'localhost' },
    { name: 'socks5h:// with a name the upstream resolves', scheme: 'socks5h', upstreamHost: '127.0.0.1', host: 'localhost' },
  ];
  for (const { name, scheme, upstreamHost, host } of CASES) {
    it(`${name}: 256 KiB echoed back intact`, async () => {
      const socket = await connectVia(`${scheme}://${upstreamHost}:${dante.port}`, { host, port: echo.port });
      open.push(socket);
      const sent = randomBytes(256 * 1024);
      assert.ok((await roundTrip(socket, sent)).equals(sent), 'the echo differs from what was sent');
      socket.end();
    });
  }

  it('a destination nobody listens on: ERR_SOCKS_CONNECTION_REFUSED (dante reply 5)', async () => {
    const error = await rejection(connectVia(`socks5://127.0.0.1:${dante.port}`, { host: '127.0.0.1', port: 1 }));
    assert.equal(error.code, 'ERR_SOCKS_CONNECTION_REFUSED', `${error.message}\n${dante.log()}`);
    assert.equal(error.reply, 5);
  });
});

describe('connectVia through dante with a user name and password (RFC 1929)', function () {
  this.timeout(30_000);
  const USER = `wfpup${process.pid % 100000}`;
  const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
  let dante: RealServer;
  let echo: Awaited<ReturnType<typeof echoServers>>;
  let removeUser: (() => void) | undefined;

  before(async function () {
    skipIfMissing(this);
    if (process.getuid?.() !== 0) {
      console.warn('    !!! SKIPPED, SOCKS5 username/password against dante did NOT run: it needs root to create a system user');
      this.skip();
    }
    removeUser = addSystemUser(USER, PASSWORD);
    dante = await startDante('username');
    echo = await echoServers();
  });
  after(async () => {
    await dante?.stop();
    await echo?.close();
    removeUser?.();
  });

  it('the right user name and password: bytes echoed both ways', async () => {
    const socket = await connectVia(`socks5://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${dante.port}`, { host: '127.0.0.1', port: echo.port });
    const sent = randomBytes(64 * 1024);
    assert.ok((await roundTrip(socket, sent)).equals(sent));
    socket.destroy();
  });

  it('the password from an environment variable named in the URL', async () => {
    const env = { WFP_TEST_SOCKS_PASSWORD: PASSWORD };
    const socket = await connectVia(`socks5h://${USER}@127.0.0.1:${dante.port}?password_env=WFP_TEST_SOCKS_PASSWORD`, { host: 'localhost', port: echo.port }, { env });
    const sent = randomBytes(1024);
    assert.ok((await roundTrip(socket, sent)).equals(sent));
    socket.destroy();
  });

  it('a wrong password: ERR_SOCKS_AUTH_FAILED, and neither the user name nor the password in the message', async () => {
    const error = await rejection(connectVia(`socks5://${USER}:wrong-${PASSWORD}@127.0.0.1:${dante.port}`, { host: '127.0.0.1', port: echo.port }));
    assert.equal(error.code, 'ERR_SOCKS_AUTH_FAILED', `${error.message}\n${dante.log()}`);
    assert.ok(!error.message.includes(PASSWORD) && !error.message.includes(USER), error.message);
  });

  it('no credentials: ERR_SOCKS_NO_ACCEPTABLE_METHODS', async () => {
    const error = await rejection(connectVia(`socks5://127.0.0.1:${dante.port}`, { host: '127.0.0.1', port: echo.port }));
    assert.equal(error.code, 'ERR_SOCKS_NO_ACCEPTABLE_METHODS');
  });
});

describe('associateUdp through dante (UDP ASSOCIATE)', function () {
  this.timeout(30_000);
  let dante: RealServer;
  const echoes: dgram.Socket[] = [];

  before(async function () {
    skipIfMissing(this);
    dante = await startDante('none');
  });
  after(async () => {
    for (const socket of echoes) socket.close();
    await dante?.stop();
  });

  for (const host of ['127.0.0.1', '::1']) {
    it(`datagrams to ${host} and their replies, unwrapped, with the replier as source`, async () => {
      const echo = await udpEcho(host);
      echoes.push(echo.socket);
      const association = await associateUdp(`socks5://127.0.0.1:${dante.port}`);
      try {
        assert.equal(association.relay.address, '127.0.0.1', 'dante names its relay on the control connection\'s address');
        for (let i = 0; i < 3; i++) {
          const payload = randomBytes(100 + i * 500);
          const reply = nextMessage(association);
          association.send(payload, echo.port, host);
          const [back, remote] = await reply;
          assert.ok(back.equals(payload), `datagram ${i} came back different`);
          assert.equal(remote.address, host);
          assert.equal(remote.port, echo.port);
          assert.equal(remote.size, payload.length);
        }
        assert.equal(association.stats().received, 3);
        assert.equal(association.stats().sent, 3);
      } finally {
        association.close();
      }
      const [error] = await once(association, 'close');
      assert.equal(error, undefined);
    });
  }
});
