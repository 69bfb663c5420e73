import assert from 'node:assert/strict';
import http from 'node:http';
import { MAX_HTTP_HEAD_BYTES, sniffHttpHost, type HttpHostResult } from '../dist/sniff';
import { captureFirstFlight, runClient, needsProgram } from './sniff-helpers';

const sniff = (text: string): HttpHostResult => sniffHttpHost(Buffer.from(text, 'latin1'));
const reasonOf = (text: string): string => {
  const result = sniff(text);
  return result.kind === 'none' ? result.reason : result.kind;
};
const found = (name: string, hostKind: 'dns' | 'ipv4' | 'ipv6', port: number | undefined, from: 'request-target' | 'host-header', method = 'GET', version: '1.0' | '1.1' = '1.1') =>
  ({ kind: 'found', protocol: 'http', name, hostKind, port, from, method, version }) as const;

describe('sniffHttpHost: real clients', function () {
  it("reads curl's Host: name and port, lowercased", async function () {
    needsProgram(this, 'curl');
    const bytes = await captureFirstFlight((port) => runClient('curl', ['-s', '--max-time', '5', '--resolve', `Curl.Example:${port}:127.0.0.1`, `http://Curl.Example:${port}/path`]));
    const port = Number(/Host: [^:]+:(\d+)/i.exec(bytes.toString('latin1'))![1]);
    assert.deepEqual(sniffHttpHost(bytes), found('curl.example', 'dns', port, 'host-header'));
  });

  it("reads curl's absolute-form request through a proxy, and its CONNECT", async function () {
    needsProgram(this, 'curl');
    const absolute = await captureFirstFlight((port) => runClient('curl', ['-s', '--max-time', '5', '-x', `http://127.0.0.1:${port}`, 'http://via-proxy.example:8080/x']));
    assert.deepEqual(sniffHttpHost(absolute), found('via-proxy.example', 'dns', 8080, 'request-target'));
    const connect = await captureFirstFlight((port) => runClient('curl', ['-s', '--max-time', '5', '-p', '-x', `http://127.0.0.1:${port}`, 'https://tunnel.example/']));
    assert.deepEqual(sniffHttpHost(connect), found('tunnel.example', 'dns', 443, 'request-target', 'CONNECT'));
  });

  it("reads Node's http client, and needs more for every prefix of its head", async function () {
    const bytes = await captureFirstFlight((port) => {
      const request = http.request({ host: '127.0.0.1', port, path: '/', method: 'POST', headers: { Host: '[2001:DB8::1]:8443' } });
      request.on('error', () => {});
      request.end('body');
      return () => request.destroy();
    });
    assert.deepEqual(sniffHttpHost(bytes), found('2001:db8::1', 'ipv6', 8443, 'host-header', 'POST'));
    const headEnd = bytes.indexOf('\r\n\r\n') + 4;
    for (let n = 0; n < headEnd; n++) assert.deepEqual(sniffHttpHost(bytes.subarray(0, n)), { kind: 'need-more' }, `prefix of ${n}`);
  });
});

describe('sniffHttpHost: the request', function () {
  it('finds the Host field whatever its case, strips the port and whitespace, takes IPv4 and a trailing dot', function () {
    assert.deepEqual(sniff('GET / HTTP/1.1\r\nhOsT: \t WWW.Example.com:8080 \t\r\n\r\n'), found('www.example.com', 'dns', 8080, 'host-header'));
    assert.deepEqual(sniff('GET / HTTP/1.0\r\nHost: 192.0.2.7\r\n\r\n'), found('192.0.2.7', 'ipv4', undefined, 'host-header', 'GET', '1.0'));
    assert.deepEqual(sniff('GET / HTTP/1.1\r\nHost: abs.example.:\r\n\r\n'), found('abs.example', 'dns', undefined, 'host-header'));
    assert.deepEqual(sniff('OPTIONS * HTTP/1.1\nHost: lf.example\n\n'), found('lf.example', 'dns', undefined, 'host-header', 'OPTIONS'));
  });

  it("prefers an absolute-form target's host to the Host field (RFC 9112 3.2.2)", function () {
    assert.deepEqual(sniff('GET http://Target.example/p?q HTTP/1.1\r\nHost: other.example\r\n\r\n'), found('target.example', 'dns', undefined, 'request-target'));
    assert.deepEqual(sniff('GET http://[::1]:81 HTTP/1.1\r\n\r\n'), found('::1', 'ipv6', 81, 'request-target'));
  });

  it('refuses what could be read two ways: two Hosts, obs-fold, a space before the colon, bare CR, userinfo', function () {
    assert.equal(reasonOf('GET / HTTP/1.1\r\nHost: a.example\r\nHOST: b.example\r\n\r\n'), 'duplicate-host');
    assert.equal(reasonOf('GET / HTTP/1.1\r\nX: 1\r\n  folded\r\nHost: a.example\r\n\r\n'), 'malformed');
    assert.equal(reasonOf('GET / HTTP/1.1\r\nHost : a.example\r\n\r\n'), 'malformed');
    assert.equal(reasonOf('GET / HTTP/1.1\r\nX: a\rb\r\nHost: a.example\r\n\r\n'), 'malformed');
    assert.equal(reasonOf('GET / HTTP/1.1\r\nX: a\u0000\r\n'), 'malformed');
    assert.equal(reasonOf('GET http://user@a.example/ HTTP/1.1\r\n\r\n'), 'bad-name');
    assert.equal(reasonOf('GET / HTTP/1.1\r\nHost: evil.example@a.example\r\n\r\n'), 'bad-name');
  });

  it('refuses hosts that are not names or addresses, and ports out of range', function () {
    for (const host of ['a_b c', '[::1', '[fe80::1%25eth0]', '[1.2.3.4]', 'a.example:65536', 'a.example:8o', 'a.example:1:2', '010.0.0.1', 'a%2eexample', 'ex\u00e4mple.com']) {
      assert.equal(reasonOf(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`), 'bad-name', host);
    }
  });

  it('answers no-host for a complete head without one', function () {
    assert.equal(reasonOf('GET / HTTP/1.0\r\n\r\n'), 'no-host');
    assert.equal(reasonOf('GET / HTTP/1.1\r\nHost:\r\n\r\n'), 'no-host');
  });

  it('tells at once what is not an HTTP/1.x request line, and HTTP/2 with prior knowledge', function () {
    for (const text of ['\u0016\u0003\u0001', ' GET', 'GET  /', 'GET / HTTP/2', 'GET / HTTP/1.1 x', 'GET / FTP', 'SSH-2.0-OpenSSH_9.6 Ubuntu\r\n', `${'A'.repeat(33)}`]) {
      assert.equal(reasonOf(text), 'not-http', JSON.stringify(text));
    }
    assert.equal(reasonOf('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), 'http2-preface');
    for (const text of ['', 'G', 'GET', 'GET ', 'GET /', 'GET / ', 'GET / HTTP/1.', 'GET / HTTP/1.1\r', 'PRI * HTTP/']) {
      assert.deepEqual(sniff(text), { kind: 'need-more' }, JSON.stringify(text));
    }
  });

  it(`gives up on a head that has not ended within ${MAX_HTTP_HEAD_BYTES} bytes, and not before`, function () {
    const start = 'GET / HTTP/1.1\r\nHost: a.example\r\nX: ';
    const almost = start + 'x'.repeat(MAX_HTTP_HEAD_BYTES - start.length - 5);
    assert.deepEqual(sniff(almost), { kind: 'need-more' });
    assert.equal(sniff(almost + '\r\n\r\n').kind, 'found');
    assert.equal(reasonOf(start + 'x'.repeat(MAX_HTTP_HEAD_BYTES)), 'head-too-long');
    assert.equal(reasonOf(`GET /${'a'.repeat(MAX_HTTP_HEAD_BYTES)}`), 'head-too-long');
  });

  it('throws TypeError for an argument that is not bytes', function () {
    assert.throws(() => sniffHttpHost('GET / HTTP/1.1' as unknown as Uint8Array), TypeError);
  });
});
