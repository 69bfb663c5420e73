// TransparentProxy with rules, in one process on loopback (its fixed-upstream
// mode; the kernel-redirected path is in proxy-rules.test.ts): the route hook
// gets the rule, the domain and how it was learned, and may still override
// the rule; a block resets the client; and the CLI's log lines (text and
// JSON) carry the rule and the process.
import assert from 'node:assert/strict';
import net from 'node:net';
import { TransparentProxy, type ConnectionLog, type RouteRequest } from '..';
import { checkConfig, RuleMatcher } from '../dist/proxy/rules';
import { formatter } from '../dist/proxy/log-format';
import { echoServer } from './proxy-process';

/** Sends `text`, then reads until the far end closes: what came back and how it ended. */
async function converse(port: number, text: string): Promise<{ echoed: string; ended: string }> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  let echoed = '';
  let ended = 'close';
  socket.on('data', (data) => {
    echoed += data;
    if (echoed.length >= text.length) socket.end();
  });
  socket.on('error', (error: NodeJS.ErrnoException) => (ended = error.code ?? error.message));
  socket.write(text);
  await new Promise((resolve) => socket.once('close', resolve));
  return { echoed, ended };
}

describe('TransparentProxy with rules', function () {
  this.timeout(20_000);
  let echo: net.Server;
  before(async () => (echo = await echoServer()));
  after(() => echo.close());

  it('the route hook gets the rule, the domain and how it was learned; a block resets the client before the hook is asked; the log names the rule', async function () {
    const port = (echo.address() as net.AddressInfo).port;
    const rules = new RuleMatcher(checkConfig({ rules: [{ domain: 'blocked.test', action: 'block', name: 'nope' }, { port, action: 'direct', name: 'echo' }] }, 'rules.json'));
    const asked: Array<Pick<RouteRequest, 'rule' | 'domain' | 'learned'>> = [];
    const logs: ConnectionLog[] = [];
    const proxy = new TransparentProxy({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port } },
      rules,
      route: ({ rule, domain, learned }) => void asked.push({ rule, domain, learned }),
      log: (entry) => logs.push(entry),
    });
    const listening = await proxy.listen();
    try {
      const request = (host: string) => `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
      assert.deepEqual(await converse(listening.port, request('fine.test')), { echoed: request('fine.test'), ended: 'close' });
      assert.deepEqual(await converse(listening.port, request('blocked.test')), { echoed: '', ended: 'ECONNRESET' });
      for (let waited = 0; logs.length < 2 && waited < 5000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(asked, [{ rule: 'echo', domain: 'fine.test', learned: 'http-host' }], 'a blocked connection never reaches the hook');
      assert.deepEqual(logs.map((entry) => [entry.domain, entry.rule, entry.error]), [['fine.test', 'echo', undefined], ['blocked.test', 'nope', 'ERR_PROXY_BLOCKED']]);
    } finally {
      await proxy.shutdown(0);
    }
  });

  it("the route hook's answer wins over the rule's upstream", async function () {
    const port = (echo.address() as net.AddressInfo).port;
    const rules = new RuleMatcher(checkConfig({ upstreams: { gone: 'socks5://127.0.0.1:9' }, rules: [], default: { via: 'gone' } }, 'rules.json'));
    const logs: ConnectionLog[] = [];
    const proxy = new TransparentProxy({
      listen: { host: '127.0.0.1', port: 0 },
      destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port } },
      rules,
      route: ({ destination }) => ({ ...destination, via: null }),
      log: (entry) => logs.push(entry),
    });
    const listening = await proxy.listen();
    try {
      assert.deepEqual(await converse(listening.port, 'direct after all'), { echoed: 'direct after all', ended: 'close' });
      for (let waited = 0; logs.length < 1 && waited < 5000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual([logs[0].rule, logs[0].via, logs[0].error], ['default', undefined, undefined]);
    } finally {
      await proxy.shutdown(0);
    }
  });

  it('a rules option that is not one is refused', function () {
    assert.throws(() => new TransparentProxy({ listen: { host: '127.0.0.1', port: 0 }, destination: { kind: 'upstream', upstream: { host: '127.0.0.1', port: 1 } }, rules: {} as never }), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it("log lines: the rule (quoted when its name has spaces) and the process, in text and JSON", function () {
    const entry: ConnectionLog = {
      id: 3, client: '10.0.0.5:40000', destination: '10.0.0.2:443', domain: 'a.test', learned: 'sni', process: { pid: 42, name: 'curl', path: '/usr/bin/curl' },
      rule: 'rules[2]', records: 0, bytesUp: 1, bytesDown: 2, durationMs: 3,
    };
    const text = formatter({ format: 'text', worker: undefined, records: false });
    assert.match(text(entry), / -> 10\.0\.0\.2:443 \(a\.test, sni\) process=curl\[42\] rule=rules\[2\] up=1 /);
    assert.match(text({ ...entry, rule: 'no ads' }), / rule="no ads" up=1 /);
    const json = JSON.parse(formatter({ format: 'json', worker: undefined, records: false })(entry));
    assert.deepEqual([json.rule, json.process, json.learned], ['rules[2]', { pid: 42, name: 'curl', path: '/usr/bin/curl' }, 'sni']);
  });
});

