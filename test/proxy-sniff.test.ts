// The CLI with --sniff, against real clients and servers: Node's tls with a
// server name and a TLS server that completes the handshake, curl with a Host,
// openssl s_client, and a server that speaks first. Each connection's domain
// is logged with how it was learned, and every byte the sniff read reaches the
// destination unchanged (the handshakes complete, the requests are answered).
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { TransparentProxy, type ConnectionLog, type RouteRequest } from '..';
import { TLS_CERT, TLS_KEY } from './sniff-helpers';
import { CLI, start, stop, type Running } from './proxy-process';

// Asynchronously: the servers these clients talk to run in this process.
const run = promisify(execFile);
const has = (tool: string) => !spawnSync(tool, ['--version'], { stdio: 'ignore' }).error || !spawnSync(tool, ['version'], { stdio: 'ignore' }).error;

async function listening<T extends net.Server>(server: T): Promise<T> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

const portOf = (server: net.Server) => (server.address() as net.AddressInfo).port;

async function logOf(proxy: Running, count = 1): Promise<ConnectionLog[]> {
  for (let waited = 0; proxy.stdout.length < count && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
  return proxy.stdout.map((line) => JSON.parse(line) as ConnectionLog);
}

describe('wfp-redirect-proxy --sniff', function () {
  this.timeout(60_000);

  it('a TLS client with a server name: logged as its SNI, and the handshake through the proxy completes', async function () {
    const server = await listening(tls.createServer({ key: TLS_KEY, cert: TLS_CERT }, (socket) => socket.pipe(socket)));
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${portOf(server)}`, '--sniff', '--log', 'json'], /listening on .*:(\d+)$/);
    try {
      const client = tls.connect({ port: proxy.port, host: '127.0.0.1', servername: 'api.example.test', rejectUnauthorized: false });
      await once(client, 'secureConnect');
      client.end('hello over tls');
      let echoed = '';
      client.on('data', (data) => (echoed += data));
      await once(client, 'close');
      assert.equal(echoed, 'hello over tls');
      const [log] = await logOf(proxy);
      assert.equal(log.domain, 'api.example.test', JSON.stringify(log));
      assert.equal(log.learned, 'sni');
    } finally {
      await stop(proxy);
      server.close();
    }
  });

  it('curl with a Host header: logged as the Host, and the request answered', async function () {
    if (!has('curl')) {
      console.warn('    !!! curl is not installed: the curl test is NOT run');
      this.skip();
    }
    const server = await listening(http.createServer((request, response) => response.end(`host was ${request.headers.host}`)));
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${portOf(server)}`, '--sniff', '--log', 'json'], /listening on .*:(\d+)$/);
    try {
      const curl = await run('curl', ['-s', '--max-time', '10', '-H', 'Host: Web.Example.Test', `http://127.0.0.1:${proxy.port}/`], { encoding: 'utf8' });
      assert.equal(curl.stdout, 'host was Web.Example.Test', curl.stderr);
      const [log] = await logOf(proxy);
      assert.equal(log.domain, 'web.example.test', JSON.stringify(log));
      assert.equal(log.learned, 'http-host');
    } finally {
      await stop(proxy);
      server.close();
    }
  });

  it('openssl s_client -servername: logged as its SNI, the handshake completes', async function () {
    if (!has('openssl')) {
      console.warn('    !!! openssl is not installed: the s_client test is NOT run');
      this.skip();
    }
    const server = await listening(tls.createServer({ key: TLS_KEY, cert: TLS_CERT }, (socket) => socket.end('served\n')));
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${portOf(server)}`, '--sniff', '--log', 'json'], /listening on .*:(\d+)$/);
    try {
      const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${proxy.port}`, '-servername', 'mail.example.test', '-quiet'], { encoding: 'utf8', timeout: 15_000 });
      child.stdin!.end();
      let output = '';
      child.stdout!.on('data', (data) => (output += data));
      child.stderr!.on('data', (data) => (output += data));
      await once(child, 'close');
      assert.match(output, /served/, output);
      const [log] = await logOf(proxy);
      assert.equal(log.domain, 'mail.example.test', JSON.stringify(log));
    } finally {
      await stop(proxy);
      server.close();
    }
  });

  it('a server that speaks first is not stalled beyond the sniff\'s bound: its banner arrives, the connection is logged without a domain', async function () {
    const server = await listening(net.createServer((socket) => socket.end('220 banner\r\n')));
    const proxy = await start([CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${portOf(server)}`, '--sniff', '--log', 'json'], /listening on .*:(\d+)$/);
    try {
      const client = net.connect(proxy.port, '127.0.0.1');
      const started = Date.now();
      const [banner] = await once(client, 'data');
      const waited = Date.now() - started;
      client.destroy();
      assert.equal(String(banner), '220 banner\r\n');
      assert.ok(waited < 3000, `the banner took ${waited} ms`);
      const [log] = await logOf(proxy);
      assert.equal(log.domain, undefined);
      assert.equal(log.learned, 'none');
    } finally {
      await stop(proxy);
      server.close();
    }
  });

  it('the route hook gets the domain, and may send the connection elsewhere by it', async function () {
    const wanted = await listening(http.createServer((_request, response) => response.end('the right one')));
    const wrong = await listening(http.createServer((_request, response) => response.end('the wrong one')));
    const seen: Array<RouteRequest['domain']> = [];
    const proxy = new TransparentProxy({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port: portOf(wrong) } },
      sniff: { timeoutMs: 1000 },
      route: ({ domain }) => {
        seen.push(domain);
        return domain === 'wanted.example.test' ? { host: '127.0.0.1', port: portOf(wanted) } : undefined;
      },
    });
    const { port } = await proxy.listen();
    try {
      const body = await new Promise<string>((resolve, reject) => {
        http.get({ port, host: '127.0.0.1', headers: { host: 'wanted.example.test' } }, (response) => {
          let text = '';
          response.on('data', (data) => (text += data)).on('end', () => resolve(text));
        }).on('error', reject);
      });
      assert.equal(body, 'the right one');
      assert.deepEqual(seen, ['wanted.example.test']);
    } finally {
      await proxy.shutdown(0);
      wanted.close();
      wrong.close();
    }
  });
});
