import assert from 'node:assert/strict';
import tls from 'node:tls';
import { sniffTlsClientHello, parseClientHelloMessage, type TlsHelloResult } from '../dist/sniff';
import {
  alpnExtension,
  captureFirstFlight,
  clientHelloMessage,
  echExtension,
  extension,
  inRecords,
  runClient,
  serverNameExtension,
  u16,
  versionsExtension,
  needsProgram,
} from './sniff-helpers';

/** A Node TLS client's first flight against a port that never answers. */
function nodeHello(options: tls.ConnectionOptions): Promise<Buffer> {
  return captureFirstFlight((port) => {
    const client = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    client.on('error', () => {});
    return () => client.destroy();
  });
}

/** Every strict prefix of `bytes` is a valid beginning: need-more, never a verdict on half a hello. */
function assertEveryPrefixNeedsMore(bytes: Buffer): void {
  for (let n = 0; n < bytes.length; n++) {
    assert.deepEqual(sniffTlsClientHello(bytes.subarray(0, n)), { kind: 'need-more' }, `prefix of ${n} of ${bytes.length} bytes`);
  }
}

const hello = (...extensions: Buffer[]) => inRecords(clientHelloMessage(extensions), [16384]);
const noneFor = (bytes: Uint8Array): string => {
  const result = sniffTlsClientHello(bytes);
  return result.kind === 'none' ? result.reason : result.kind;
};

describe('sniffTlsClientHello: real clients', function () {
  it("reads a Node TLS 1.3 client's server name, lowercased, with its ALPN list and versions", async function () {
    const bytes = await nodeHello({ servername: 'Sni.Example.COM', ALPNProtocols: ['h2', 'http/1.1'] });
    const result = sniffTlsClientHello(bytes);
    assert.deepEqual(result, { kind: 'found', protocol: 'tls', name: 'sni.example.com', ech: false, alpn: ['h2', 'http/1.1'], versions: [0x0304, 0x0303] });
  });

  it('reads a TLS 1.2 hello, which has no supported_versions', async function () {
    const bytes = await nodeHello({ servername: 'tls12.example', maxVersion: 'TLSv1.2' });
    const result = sniffTlsClientHello(bytes);
    assert.equal(result.kind, 'found');
    assert.equal(result.kind === 'found' && result.name, 'tls12.example');
    assert.ok(result.kind === 'found' && !result.versions.includes(0x0304));
  });

  it('answers need-more for every prefix of a real hello (split across TCP segments anywhere)', async function () {
    assertEveryPrefixNeedsMore(await nodeHello({ servername: 'split.example' }));
  });

  it("reads openssl s_client's -servername", async function () {
    needsProgram(this, 'openssl');
    const bytes = await captureFirstFlight((port) => runClient('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'OpenSSL.example']));
    const result = sniffTlsClientHello(bytes);
    assert.equal(result.kind === 'found' && result.name, 'openssl.example', JSON.stringify(result));
  });

  it("reads curl's server name, from the URL's host", async function () {
    needsProgram(this, 'curl');
    const bytes = await captureFirstFlight((port) =>
      runClient('curl', ['-sk', '--max-time', '5', '--resolve', `curl.example:${port}:127.0.0.1`, `https://curl.example:${port}/`]),
    );
    const result = sniffTlsClientHello(bytes);
    assert.equal(result.kind === 'found' && result.name, 'curl.example', JSON.stringify(result));
    assert.ok(result.kind === 'found' && result.alpn.includes('http/1.1'));
  });

  it('answers no-server-name for a client that connects by IP address (Node sends no SNI then)', async function () {
    const bytes = await nodeHello({});
    assert.equal(noneFor(bytes), 'no-server-name');
  });
});

describe('sniffTlsClientHello: reassembly across records', function () {
  it('joins a real hello cut into records of 1, 7, 100 and 300 bytes; every prefix of those needs more', async function () {
    const records = await nodeHello({ servername: 'records.example', ALPNProtocols: ['h2'] });
    const message = records.subarray(5, 5 + records.readUInt16BE(3));
    for (const sizes of [[1], [7], [100], [300], [3, 1, 200]]) {
      const reframed = inRecords(message, sizes);
      const result = sniffTlsClientHello(reframed);
      assert.equal(result.kind === 'found' && result.name, 'records.example', `records of ${sizes.join(',')}: ${JSON.stringify(result)}`);
    }
    assertEveryPrefixNeedsMore(inRecords(message, [7]));
  });

  it('refuses a record of another type in the middle of the hello', function () {
    const message = clientHelloMessage([serverNameExtension('a.example')]);
    const first = inRecords(message.subarray(0, 20), [20]);
    const changeCipherSpec = Buffer.from([20, 3, 3, 0, 1, 1]);
    assert.equal(noneFor(Buffer.concat([first, changeCipherSpec, inRecords(message.subarray(20), [1000])])), 'malformed');
  });

  it('refuses empty and oversized records (RFC 8446 5.1)', function () {
    assert.equal(noneFor(Buffer.from([22, 3, 1, 0, 0])), 'not-tls');
    assert.equal(noneFor(Buffer.from([22, 3, 1, 0x40, 0x01])), 'not-tls');
    const message = clientHelloMessage([serverNameExtension('a.example')]);
    assert.equal(noneFor(Buffer.concat([inRecords(message.subarray(0, 10), [10]), Buffer.from([22, 3, 1, 0, 0])])), 'malformed');
  });
});

describe('sniffTlsClientHello: what the hello says', function () {
  it('reports ECH: the name found is the outer (public) one', function () {
    const result = sniffTlsClientHello(hello(serverNameExtension('public.ech.example'), echExtension(), versionsExtension(0x0304)));
    assert.deepEqual(result, { kind: 'found', protocol: 'tls', name: 'public.ech.example', ech: true, alpn: [], versions: [0x0304] });
    assert.equal((sniffTlsClientHello(hello(serverNameExtension('plain.example'))) as { ech?: boolean }).ech, false);
  });

  it('leaves GREASE out of the versions and keeps ALPN order', function () {
    const result = sniffTlsClientHello(hello(versionsExtension(0x2a2a, 0x0304, 0x0303), alpnExtension('x', 'h2'), serverNameExtension('g.example')));
    assert.deepEqual(result, { kind: 'found', protocol: 'tls', name: 'g.example', ech: false, alpn: ['x', 'h2'], versions: [0x0304, 0x0303] });
  });

  it('refuses names that are not DNS host names', function () {
    const cases: Array<[string | Buffer, string]> = [
      ['192.0.2.1', 'ip-literal'],
      ['10.1', 'ip-literal'],
      ['2001:db8::1', 'bad-name'],
      ['a.example.', 'bad-name'],
      ['a..example', 'bad-name'],
      ['-a.example', 'bad-name'],
      ['a b.example', 'bad-name'],
      [Buffer.from('a\u0000.example', 'latin1'), 'bad-name'],
      [Buffer.from('a\r\n.example', 'latin1'), 'bad-name'],
      [Buffer.from([0x61, 0xe9, 0x2e, 0x63, 0x6f]), 'bad-name'],
      ['', 'bad-name'],
      [`${'a'.repeat(64)}.example`, 'bad-name'],
      [`${'a.'.repeat(127)}ab`, 'bad-name'],
    ];
    for (const [name, reason] of cases) assert.equal(noneFor(hello(serverNameExtension(name))), reason, JSON.stringify(name.toString()));
    assert.equal(noneFor(hello(serverNameExtension(`${'a'.repeat(63)}.xn--bcher-kva.example`))), 'found');
    assert.equal(noneFor(hello(serverNameExtension('_srv.under_score.example'))), 'found');
  });

  it('refuses two server_name extensions, or two host_names in one', function () {
    assert.equal(noneFor(hello(serverNameExtension('a.example'), serverNameExtension('b.example'))), 'malformed');
    assert.equal(noneFor(hello(serverNameExtension('a.example', 'b.example'))), 'malformed');
  });

  it('tells at once a stream that is not TLS, and waits on one that may be', function () {
    assert.equal(noneFor(Buffer.from('G')), 'not-tls');
    assert.equal(noneFor(Buffer.from([0x80, 0x2e, 0x01])), 'not-tls'); // an SSLv2-format hello
    assert.equal(noneFor(Buffer.from([22, 2])), 'not-tls');
    assert.deepEqual(sniffTlsClientHello(Buffer.from([22, 3])), { kind: 'need-more' });
    assert.equal(noneFor(Buffer.from([22, 3, 1, 0, 4, 2])), 'not-client-hello');
    assert.equal(noneFor(Buffer.from([22, 3, 1, 0, 4, 1, 0, 0x80, 1])), 'hello-too-long');
  });

  it('refuses lengths that lie about the structure', function () {
    const message = clientHelloMessage([serverNameExtension('a.example')]);
    const lie = (at: number, value: number) => {
      const copy = Buffer.from(message);
      copy.writeUInt16BE(value, at);
      return inRecords(copy, [16384]);
    };
    const extensionsLengthAt = 4 + 2 + 32 + 1 + 32 + 2 + 4 + 1 + 1;
    assert.equal(noneFor(lie(extensionsLengthAt, 0xffff)), 'malformed');
    assert.equal(noneFor(lie(extensionsLengthAt + 2 + 2, 0xfff0)), 'malformed'); // the server_name extension's length
    assert.equal(noneFor(lie(extensionsLengthAt + 2 + 4, 0x00ff)), 'malformed'); // its list's length
    assert.equal(noneFor(inRecords(clientHelloMessage([extension(16, u16(1))]), [100])), 'malformed'); // an ALPN list cut short
  });

  it('reads the same ClientHello message without records, as QUIC carries it', function () {
    const message = clientHelloMessage([serverNameExtension('quic.example')]);
    const result: TlsHelloResult = parseClientHelloMessage(message);
    assert.equal(result.kind === 'found' && result.name, 'quic.example');
    assert.deepEqual(parseClientHelloMessage(message.subarray(0, 50)), { kind: 'need-more' });
  });

  it('throws TypeError for an argument that is not bytes, and nothing else', function () {
    assert.throws(() => sniffTlsClientHello('x' as unknown as Uint8Array), TypeError);
    assert.throws(() => parseClientHelloMessage(undefined as unknown as Uint8Array), TypeError);
    assert.deepEqual(sniffTlsClientHello(new Uint8Array(0)), { kind: 'need-more' });
  });
});
