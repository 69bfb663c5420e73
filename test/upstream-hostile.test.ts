// connectVia and associateUdp against a scripted upstream: every malformed or
// hostile answer a real server will not give (short then closed, oversized,
// wrong version, one byte at a time, silent), each reply code, bytes after the
// answer, abort. Runs in Linux Node and in Windows node.exe.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import type net from 'node:net';
import { associateUdp, connectVia } from '..';
import { rejection } from './helpers';
import { readSocksGreeting, readSocksRequest, scriptedServer } from './fixtures/upstream-servers';

type Read = (n: number) => Promise<Buffer>;
type Script = (socket: net.Socket, read: Read) => unknown;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const DESTINATION = { host: '192.0.2.1', port: 443 };
const SUCCESS_V4 = Buffer.from([5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90]);

/** Writes `bytes` one at a time, `ms` apart. */
async function trickle(socket: net.Socket, bytes: Buffer, ms = 3): Promise<void> {
  for (const byte of bytes) {
    if (socket.destroyed) return;
    socket.write(Buffer.from([byte]));
    await sleep(ms);
  }
}

/** Runs `script` as the upstream and connects through it; the caller closes the server (`failure` does). */
async function through(scheme: string, script: Script, options: Parameters<typeof connectVia>[2] = {}, destination = DESTINATION) {
  const server = await scriptedServer(script);
  const url = scheme.includes('@') ? scheme.replace('PORT', String(server.port)) : `${scheme}://127.0.0.1:${server.port}`;
  const result = await connectVia(url, destination, { handshakeTimeout: 3000, ...options }).then(
    (socket) => ({ socket, error: undefined as any }),
    (error) => ({ socket: undefined, error }),
  );
  return { ...result, server };
}

async function failure(scheme: string, script: Script, options: Parameters<typeof connectVia>[2] = {}): Promise<any> {
  const { socket, error, server } = await through(scheme, script, options);
  socket?.destroy();
  await server.close();
  assert.ok(error, 'connectVia resolved where it must fail');
  return error;
}

/** A SOCKS5 server that accepts no-auth and answers the request with `reply`. */
const socksAnswering = (reply: Buffer | ((socket: net.Socket) => unknown)): Script => async (socket, read) => {
  await readSocksGreeting(read);
  socket.write(Buffer.from([5, 0]));
  await readSocksRequest(read);
  if (Buffer.isBuffer(reply)) socket.write(reply);
  else await reply(socket);
};

/** The first `n` bytes the socket delivers after connectVia resolved. */
function firstBytes(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`only ${Buffer.concat(chunks).length} of ${n} bytes in 3 s`)), 3000);
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      if (Buffer.concat(chunks).length >= n) (clearTimeout(timer), resolve(Buffer.concat(chunks)));
    });
  });
}

describe('connectVia against a hostile SOCKS5 upstream', function () {
  this.timeout(20_000);

  const REPLIES: Array<[number, string]> = [
    [1, 'ERR_SOCKS_GENERAL_FAILURE'],
    [2, 'ERR_SOCKS_NOT_ALLOWED'],
    [3, 'ERR_SOCKS_NETWORK_UNREACHABLE'],
    [4, 'ERR_SOCKS_HOST_UNREACHABLE'],
    [5, 'ERR_SOCKS_CONNECTION_REFUSED'],
    [6, 'ERR_SOCKS_TTL_EXPIRED'],
    [7, 'ERR_SOCKS_COMMAND_NOT_SUPPORTED'],
    [8, 'ERR_SOCKS_ADDRESS_TYPE_NOT_SUPPORTED'],
    [9, 'ERR_SOCKS_UNASSIGNED_REPLY'],
    [0xfe, 'ERR_SOCKS_UNASSIGNED_REPLY'],
  ];
  for (const [reply, code] of REPLIES) {
    it(`reply ${reply} (sent alone, then closed): ${code}`, async () => {
      const error = await failure('socks5', socksAnswering((socket) => socket.end(Buffer.from([5, reply]))));
      assert.equal(error.code, code, error.message);
      assert.equal(error.reply, reply);
    });
  }

  const MALFORMED: Array<[string, Script, string]> = [
    ['a method choice of version 4', async (socket, read) => (await readSocksGreeting(read), socket.write(Buffer.from([4, 0]))), 'ERR_SOCKS_MALFORMED_REPLY'],
    ['a method that was not offered (2, without credentials)', async (socket, read) => (await readSocksGreeting(read), socket.write(Buffer.from([5, 2]))), 'ERR_SOCKS_MALFORMED_REPLY'],
    ['no acceptable method (X\'FF\')', async (socket, read) => (await readSocksGreeting(read), socket.write(Buffer.from([5, 0xff]))), 'ERR_SOCKS_NO_ACCEPTABLE_METHODS'],
    ['a reply of version 4', socksAnswering(Buffer.from([4, 0, 0, 1, 0, 0, 0, 0, 0, 0])), 'ERR_SOCKS_MALFORMED_REPLY'],
    ['a reply with address type 2', socksAnswering(Buffer.from([5, 0, 0, 2, 0, 0, 0, 0, 0, 0])), 'ERR_SOCKS_MALFORMED_REPLY'],
    ['one byte, then closed', async (socket, read) => (await readSocksGreeting(read), socket.end(Buffer.from([5]))), 'ERR_UPSTREAM_CLOSED'],
    ['a reply cut inside its IPv6 address, then closed', socksAnswering((socket) => socket.end(Buffer.from([5, 0, 0, 4, 1, 2, 3]))), 'ERR_UPSTREAM_CLOSED'],
    ['a name of 255 bytes announced, 10 sent, then closed', socksAnswering((socket) => socket.end(Buffer.from([5, 0, 0, 3, 255, ...Buffer.alloc(10, 0x61)]))), 'ERR_UPSTREAM_CLOSED'],
    ['a reset in the middle of the reply', socksAnswering((socket) => (socket.write(Buffer.from([5, 0])), setTimeout(() => socket.resetAndDestroy(), 50))), 'ERR_UPSTREAM_CLOSED'],
    ['an answer to the greeting of 1 MiB of garbage', async (socket, read) => (await readSocksGreeting(read), socket.write(Buffer.alloc(1024 * 1024, 0x48))), 'ERR_SOCKS_MALFORMED_REPLY'],
  ];
  for (const [name, script, code] of MALFORMED) {
    it(`${name}: ${code}`, async () => {
      const error = await failure('socks5', script);
      assert.equal(error.code, code, error.message);
      assert.equal(error.name, 'UpstreamError');
    });
  }

  /** A server that picks username/password, checks what it got, and answers `status` in `version`. */
  const authAnswering = (version: number, status: number, seen: Array<{ user: string; password: string }>): Script => async (socket, read) => {
    const offered = await readSocksGreeting(read);
    assert.deepEqual(offered, [0, 2]);
    socket.write(Buffer.from([5, 2]));
    const [, userLength] = await read(2);
    const user = (await read(userLength)).toString();
    const password = (await read((await read(1))[0])).toString();
    seen.push({ user, password });
    socket.write(Buffer.from([version, status]));
    await readSocksRequest(read);
    socket.write(SUCCESS_V4);
  };

  it('username/password (RFC 1929): sent as given, success, refusal (ERR_SOCKS_AUTH_FAILED), wrong version', async () => {
    const seen: Array<{ user: string; password: string }> = [];
    const options = { env: { UP_PASS: 'pässwörd' } };
    const ok = await through('socks5://usér@127.0.0.1:PORT?password_env=UP_PASS', authAnswering(1, 0, seen), options);
    ok.socket?.destroy();
    await ok.server.close();
    assert.equal(ok.error, undefined, ok.error?.message);
    const url = (port: number) => `socks5://us%C3%A9r@127.0.0.1:${port}?password_env=UP_PASS`;
    for (const [version, status, code] of [[1, 1, 'ERR_SOCKS_AUTH_FAILED'], [1, 0xff, 'ERR_SOCKS_AUTH_FAILED'], [5, 0, 'ERR_SOCKS_MALFORMED_REPLY']] as const) {
      const server = await scriptedServer(authAnswering(version, status, seen));
      const error = await rejection(connectVia(url(server.port), DESTINATION, options)).finally(() => server.close());
      assert.equal(error.code, code, error.message);
      assert.ok(!error.message.includes('pässwörd') && !error.message.includes('usér'), error.message);
    }
    assert.deepEqual(seen.slice(1), Array(3).fill({ user: 'usér', password: 'pässwörd' }));
  });

  it('a silent upstream: ERR_UPSTREAM_TIMEOUT after handshakeTimeout, and the connection closed', async () => {
    const started = Date.now();
    const { error, server } = await through('socks5', () => {}, { handshakeTimeout: 300 });
    assert.equal(error.code, 'ERR_UPSTREAM_TIMEOUT', error.message);
    const took = Date.now() - started;
    assert.ok(took >= 280 && took < 2500, `took ${took} ms`);
    await Promise.all(server.closed);
    await server.close();
  });

  it('a reply one byte at a time, its address a name: connects, and nothing of the reply reaches the caller', async () => {
    const name = Buffer.from('relay.example');
    const reply = Buffer.concat([Buffer.from([5, 0, 0, 3, name.length]), name, Buffer.from([0, 80])]);
    const { socket, error, server } = await through('socks5', socksAnswering(async (s) => (await trickle(s, reply), s.write('DEST'))));
    assert.equal(error, undefined, error?.message);
    assert.equal((await firstBytes(socket!, 4)).toString(), 'DEST');
    socket!.destroy();
    await server.close();
  });

  it("the destination's bytes in the reply's own segment are kept, exactly, and arrive before 'end'", async () => {
    const after = Buffer.from('SSH-2.0-banner\r\n');
    const server = await scriptedServer(socksAnswering((s) => s.end(Buffer.concat([SUCCESS_V4, after]))));
    try {
      const socket = await connectVia(`socks5://127.0.0.1:${server.port}`, DESTINATION);
      const chunks: Buffer[] = [];
      socket.on('data', (chunk) => chunks.push(chunk));
      await once(socket, 'end');
      assert.deepEqual(Buffer.concat(chunks).toString(), after.toString());
      socket.destroy();
    } finally {
      await server.close();
    }
  });

  it("an answer and the end in one go, nothing after the answer: the caller still gets 'end'", async () => {
    const server = await scriptedServer(socksAnswering((s) => s.end(SUCCESS_V4)));
    try {
      const socket = await connectVia(`socks5://127.0.0.1:${server.port}`, DESTINATION);
      socket.resume();
      await new Promise((resolve, reject) => (socket.once('end', resolve), setTimeout(() => reject(new Error("no 'end' in 3 s")), 3000)));
      socket.destroy();
    } finally {
      await server.close();
    }
  });

  it('the request carries the destination: IPv4, IPv6 and (socks5h) a name, with the port', async () => {
    const seen: Array<{ type: number; host: Buffer; port: number }> = [];
    const script: Script = async (socket, read) => {
      await readSocksGreeting(read);
      socket.write(Buffer.from([5, 0]));
      seen.push(await readSocksRequest(read));
      socket.write(SUCCESS_V4);
    };
    for (const [scheme, host] of [['socks5', '192.0.2.7'], ['socks5', '2001:db8::7'], ['socks5h', 'example.test']]) {
      const { socket, error, server } = await through(scheme, script, {}, { host, port: 8443 });
      assert.equal(error, undefined, error?.message);
      socket!.destroy();
      await server.close();
    }
    assert.deepEqual(seen.map(({ type }) => type), [1, 4, 3]);
    assert.deepEqual([...seen[0].host], [192, 0, 2, 7]);
    assert.equal(seen[1].host.toString('hex'), '20010db8000000000000000000000007');
    assert.equal(seen[2].host.toString(), 'example.test');
    assert.ok(seen.every(({ port }) => port === 8443));
  });

  it('socks5:// resolves a name here (with the lookup given) and sends the address', async () => {
    let request: { type: number; host: Buffer } | undefined;
    const lookup = ((_host: string, _options: object, callback: (e: null, a: string, f: number) => void) => callback(null, '198.51.100.9', 4)) as any;
    const { socket, error, server } = await through('socks5', async (s, read) => {
      await readSocksGreeting(read);
      s.write(Buffer.from([5, 0]));
      request = await readSocksRequest(read);
      s.write(SUCCESS_V4);
    }, { lookup }, { host: 'example.test', port: 80 });
    assert.equal(error, undefined, error?.message);
    socket!.destroy();
    await server.close();
    // The upstream itself is an IP literal, so the lookup saw the destination only.
    assert.equal(request?.type, 1);
    assert.deepEqual([...request!.host], [198, 51, 100, 9]);
  });

  it('an abort during the handshake: AbortError, and the connection to the upstream closed', async () => {
    const controller = new AbortController();
    const server = await scriptedServer(() => setTimeout(() => controller.abort(new Error('stop')), 50));
    try {
      const error = await rejection(connectVia(`socks5://127.0.0.1:${server.port}`, DESTINATION, { signal: controller.signal }));
      assert.equal(error.name, 'AbortError');
      assert.equal(error.code, 'ABORT_ERR');
      await Promise.all(server.closed);
      assert.equal(server.closed.length, 1);
    } finally {
      await server.close();
    }
  });

  it('an upstream nobody listens on: ERR_UPSTREAM_CONNECT with the OS error as cause', async () => {
    const server = await scriptedServer(() => {});
    const port = server.port;
    await server.close();
    const error = await rejection(connectVia(`socks5://127.0.0.1:${port}`, DESTINATION));
    assert.equal(error.code, 'ERR_UPSTREAM_CONNECT');
    assert.equal(error.cause.code, 'ECONNREFUSED');
  });
});

describe('connectVia against a hostile HTTP upstream', function () {
  this.timeout(20_000);

  /** Reads the CONNECT request's header, then runs `answer`. */
  const answering = (answer: (socket: net.Socket) => unknown): Script => (socket) => {
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (head.includes('\r\n\r\n')) (socket.removeListener('data', onData), answer(socket));
    };
    socket.on('data', onData);
  };

  const CASES: Array<[string, (socket: net.Socket) => unknown, string, number?]> = [
    ['407', (s) => s.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n'), 'ERR_HTTP_PROXY_AUTH_REQUIRED', 407],
    ['502', (s) => s.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'), 'ERR_HTTP_PROXY_STATUS', 502],
    ['a status line that is not HTTP', (s) => s.end('SSH-2.0-OpenSSH\r\n\r\n'), 'ERR_HTTP_PROXY_MALFORMED_RESPONSE'],
    ['HTTP/2.0', (s) => s.end('HTTP/2.0 200 OK\r\n\r\n'), 'ERR_HTTP_PROXY_MALFORMED_RESPONSE'],
    ['a header that never ends (20 KiB)', (s) => s.write(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(20 * 1024)}`), 'ERR_HTTP_PROXY_HEADERS_TOO_LARGE'],
    ['a header cut short, then closed', (s) => s.end('HTTP/1.1 200 OK\r\nVia: x'), 'ERR_UPSTREAM_CLOSED'],
  ];
  for (const [name, answer, code, status] of CASES) {
    it(`${name}: ${code}`, async () => {
      const error = await failure('http', answering(answer));
      assert.equal(error.code, code, error.message);
      if (status !== undefined) assert.equal(error.status, status);
    });
  }

  it('a header of exactly maxHeaderSize bytes is accepted; one byte more is refused', async () => {
    const header = (size: number): string => {
      const start = 'HTTP/1.1 200 OK\r\nX: ';
      return `${start}${'a'.repeat(size - start.length - 4)}\r\n\r\n`;
    };
    const fits = await through('http', answering((s) => s.write(header(1024))), { maxHeaderSize: 1024 });
    assert.equal(fits.error, undefined, fits.error?.message);
    fits.socket!.destroy();
    await fits.server.close();
    const over = await failure('http', answering((s) => s.write(header(1025))), { maxHeaderSize: 1024 });
    assert.equal(over.code, 'ERR_HTTP_PROXY_HEADERS_TOO_LARGE');
    // Outside 16 B to 1 MiB: the caller's mistake, a RangeError with a code.
    for (const maxHeaderSize of [5, 2 * 1024 * 1024, 1.5]) {
      await assert.rejects(connectVia('http://127.0.0.1:9', DESTINATION, { maxHeaderSize }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    }
  });

  it('a response one byte at a time, then the destination\'s bytes: only those reach the caller', async () => {
    const { socket, error, server } = await through('http', answering(async (s) => (await trickle(s, Buffer.from('HTTP/1.1 200 Connection established\r\nVia: t\r\n\r\n'), 1), s.write('DEST'))));
    assert.equal(error, undefined, error?.message);
    assert.equal((await firstBytes(socket!, 4)).toString(), 'DEST');
    socket!.destroy();
    await server.close();
  });

  it('bytes right after the response, in its segment, are kept for the caller, then end', async () => {
    const server = await scriptedServer(answering((s) => s.end('HTTP/1.0 200 OK\r\n\r\nhello, client')));
    try {
      const socket = await connectVia(`http://127.0.0.1:${server.port}`, DESTINATION);
      const chunks: Buffer[] = [];
      socket.on('data', (chunk) => chunks.push(chunk));
      await once(socket, 'end');
      assert.equal(Buffer.concat(chunks).toString(), 'hello, client');
      socket.destroy();
    } finally {
      await server.close();
    }
  });

  it('the request: CONNECT with the authority, brackets for IPv6, Basic credentials', async () => {
    let request = '';
    const first = await through('http', (s) => {
      s.on('data', (chunk) => {
        request += chunk;
        if (request.includes('\r\n\r\n')) s.write('HTTP/1.1 200 OK\r\n\r\n');
      });
    }, {}, { host: '2001:db8::1', port: 443 });
    first.socket?.destroy();
    await first.server.close();
    assert.match(request, /^CONNECT \[2001:db8::1\]:443 HTTP\/1\.1\r\nHost: \[2001:db8::1\]:443\r\n\r\n$/);
    request = '';
    const server = await scriptedServer((s) => s.on('data', (chunk) => ((request += chunk), request.includes('\r\n\r\n') && s.write('HTTP/1.1 200 OK\r\n\r\n'))));
    try {
      const authed = await connectVia(`http://u%40x:p%3Aw@127.0.0.1:${server.port}`, { host: 'example.test', port: 443 });
      authed.destroy();
    } finally {
      await server.close();
    }
    assert.ok(request.includes(`Proxy-Authorization: Basic ${Buffer.from('u@x:p:w').toString('base64')}\r\n`), request);
  });

  it('a destination that could end a header line is refused before anything is sent', async () => {
    for (const host of ['example.test\r\nX-Injected: 1', 'a b', 'a@b', '']) {
      const error = await rejection(connectVia('http://127.0.0.1:1', { host, port: 80 }));
      assert.equal(error.code, 'ERR_UPSTREAM_DESTINATION_INVALID', host);
    }
  });
});

describe('associateUdp against a scripted SOCKS5 upstream', function () {
  this.timeout(20_000);

  /** A SOCKS5 server that answers UDP ASSOCIATE naming `relay` (unspecified: 0.0.0.0) as the relay port. */
  async function associationWith(relayPort: () => number, bound = [0, 0, 0, 0]) {
    const server = await scriptedServer(async (socket, read) => {
      await readSocksGreeting(read);
      socket.write(Buffer.from([5, 0]));
      const request = await readSocksRequest(read);
      assert.equal(request.command, 3);
      const port = Buffer.alloc(2);
      port.writeUInt16BE(relayPort());
      socket.write(Buffer.concat([Buffer.from([5, 0, 0, 1, ...bound]), port]));
    });
    return server;
  }

  it("an unspecified relay address means the upstream's own; fragments, malformed and foreign datagrams dropped and counted; replies unwrapped", async () => {
    const relay = dgram.createSocket('udp4');
    relay.bind(0, '127.0.0.1');
    await once(relay, 'listening');
    const server = await associationWith(() => relay.address().port);
    const association = await associateUdp(`socks5://127.0.0.1:${server.port}`);
    try {
      assert.deepEqual(association.relay, { address: '127.0.0.1', port: relay.address().port });
      const [wrapped, client] = (await Promise.all([once(relay, 'message'), new Promise<void>((resolve) => association.send(Buffer.from('ping'), 53, '192.0.2.53', () => resolve()))]))[0] as [Buffer, dgram.RemoteInfo];
      assert.equal(wrapped.toString('hex'), `000000${'01c0000235'}0035${Buffer.from('ping').toString('hex')}`);
      const send = (bytes: number[] | Buffer) => new Promise((resolve) => relay.send(Buffer.from(bytes), client.port, client.address, resolve));
      await send([0, 0, 1, 1, 192, 0, 2, 53, 0, 53, 0x41]); // FRAG 1
      await send([0, 0, 0]); // too short for a header
      await send([0, 0, 0, 1, 192, 0, 2]); // address cut short
      await send([0, 0, 0, 4, ...Array(15).fill(0)]); // IPv6 address cut short
      await send([0, 0, 0, 3, 200, 0x61, 0x62]); // name longer than the datagram
      await send([0, 0, 0, 7, 0, 0, 0, 0, 0, 0]); // unknown address type
      const stranger = dgram.createSocket('udp4');
      await new Promise((resolve) => stranger.send(Buffer.from([0, 0, 0, 1, 192, 0, 2, 53, 0, 53, 0x42]), client.port, client.address, resolve));
      stranger.close();
      const message = once(association, 'message');
      await send([0, 0, 0, 1, 192, 0, 2, 53, 0, 53, ...Buffer.from('pong')]);
      const [payload, remote] = await message;
      assert.equal(payload.toString(), 'pong');
      assert.deepEqual(remote, { address: '192.0.2.53', port: 53, family: 'IPv4', size: 4 });
      const stats = association.stats();
      assert.deepEqual(
        { fragments: stats.droppedFragments, malformed: stats.droppedMalformed, foreign: stats.droppedForeign, received: stats.received },
        { fragments: 1, malformed: 5, foreign: 1, received: 1 },
      );
    } finally {
      association.close();
      relay.close();
      await server.close();
    }
  });

  it('the upstream closing the control connection ends the association', async () => {
    const server = await associationWith(() => 9);
    const association = await associateUdp(`socks5h://127.0.0.1:${server.port}`);
    const closed = once(association, 'close');
    for (const socket of server.connections) socket.end();
    const [error] = await closed;
    assert.equal(error.code, 'ERR_UPSTREAM_CLOSED');
    assert.equal(association.closed, true);
    assert.throws(() => association.send(Buffer.from('x'), 53, '192.0.2.1'), { code: 'ERR_SOCKS_UDP_CLOSED' });
    await server.close();
  });

  it('close() ends the control connection at the upstream', async () => {
    const server = await associationWith(() => 9);
    const association = await associateUdp(`socks5://127.0.0.1:${server.port}`);
    const closed = once(association, 'close');
    association.close();
    await Promise.all(server.closed);
    const [error] = await closed;
    assert.equal(error, undefined);
    await server.close();
  });

  /** A SOCKS5 server that answers UDP ASSOCIATE with `reply` as it is. */
  function replying(reply: Buffer) {
    return scriptedServer(async (socket, read) => {
      await readSocksGreeting(read);
      socket.write(Buffer.from([5, 0]));
      await readSocksRequest(read);
      socket.write(reply);
    });
  }
  const domainReply = (name: Buffer, port = 99) => Buffer.concat([Buffer.from([5, 0, 0, 3, name.length]), name, Buffer.from([port >> 8, port & 0xff])]);

  for (const [what, reply] of [
    ['a relay at port 0 (nothing can be sent there)', Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0])],
    ['a relay named by an empty name', domainReply(Buffer.alloc(0))],
    ['a relay named with a NUL byte', domainReply(Buffer.from('a\0b', 'latin1'))],
    ['a relay named with bytes no host name has', domainReply(Buffer.from('relay example', 'latin1'))],
  ] as const) {
    it(`${what}: ERR_SOCKS_MALFORMED_REPLY, for socks5:// and socks5h://`, async () => {
      const server = await replying(reply);
      try {
        for (const scheme of ['socks5', 'socks5h']) {
          const error = await rejection(associateUdp(`${scheme}://127.0.0.1:${server.port}`, { handshakeTimeout: 3000 }));
          assert.equal(error.code, 'ERR_SOCKS_MALFORMED_REPLY', `${scheme}: ${error.stack}`);
        }
      } finally {
        await server.close();
      }
    });
  }

  it("a lookup of the relay's name that throws at once is ERR_UPSTREAM_DESTINATION_LOOKUP, not a throw", async () => {
    const server = await replying(domainReply(Buffer.from('relay.example')));
    try {
      const lookup = (() => {
        throw Object.assign(new TypeError('a lookup that throws'), { code: 'ERR_INVALID_ARG_VALUE' });
      }) as unknown as typeof import('node:dns').lookup;
      const error = await rejection(associateUdp(`socks5://127.0.0.1:${server.port}`, { handshakeTimeout: 3000, lookup }));
      assert.equal(error.code, 'ERR_UPSTREAM_DESTINATION_LOOKUP');
    } finally {
      await server.close();
    }
  });

  it('an http:// upstream is refused: UDP needs SOCKS5', async () => {
    const error = await rejection(associateUdp('http://127.0.0.1:8080'));
    assert.equal(error.code, 'ERR_UPSTREAM_URL_INVALID');
  });
});

