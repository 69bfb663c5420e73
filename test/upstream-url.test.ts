// Upstream URLs: what parses, what is refused (with the reason, never the
// password), and that a parsed upstream prints without its credentials.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { parseUpstream } from '..';

describe('parseUpstream', function () {
  const GOOD: Array<[string, object]> = [
    ['socks5://127.0.0.1:1080', { protocol: 'socks5', host: '127.0.0.1', port: 1080, username: undefined, password: undefined }],
    ['SOCKS5H://proxy.example', { protocol: 'socks5h', host: 'proxy.example', port: 1080 }],
    ['socks5://[::1]:9050', { protocol: 'socks5', host: '::1', port: 9050 }],
    ['http://u%40x:p%3As@proxy.example:3128/', { protocol: 'http', host: 'proxy.example', port: 3128, username: 'u@x', password: 'p:s' }],
    ['http://proxy.example', { protocol: 'http', host: 'proxy.example', port: 80 }],
  ];
  for (const [url, expected] of GOOD) {
    it(`parses ${url}`, () => {
      const upstream = parseUpstream(url);
      for (const [key, value] of Object.entries(expected)) assert.equal((upstream as any)[key], value, key);
    });
  }

  it('takes the password from the environment variable named by ?password_env= or passwordEnv', () => {
    const env = { PROXY_PASS: 's3cret' };
    assert.equal(parseUpstream('socks5://alice@h:1080?password_env=PROXY_PASS', { env }).password, 's3cret');
    assert.equal(parseUpstream('socks5://alice@h:1080', { passwordEnv: 'PROXY_PASS', env }).password, 's3cret');
    assert.throws(() => parseUpstream('socks5://alice@h:1080?password_env=UNSET_VAR', { env }), { code: 'ERR_UPSTREAM_PASSWORD_ENV', message: /UNSET_VAR, which is not set/ });
  });

  const BAD: Array<[string, RegExp]> = [
    ['not a url', /not a URL/],
    ['https://h:443', /https:\/\/ \(TLS to the proxy\) is not supported/],
    ['socks4://h:1080', /socks4:\/\/ is not supported/],
    ['ftp://h:21', /unknown scheme "ftp"/],
    ['socks5://h:0', /port "0" is not 1 to 65535/],
    ['socks5://h:1080/path', /has a path/],
    ['socks5://h:1080#frag', /#fragment/],
    ['socks5://h:1080?user=x', /unknown URL parameter "user"/],
    ['socks5://alice@h:1080', /a user name without a password/],
    ['socks5://:pw@h:1080', /a password without a user name/],
    ['socks5://alice:pw@h:1080?password_env=X', /both a password and password_env/],
    ['socks5://h:1080?password_env=X', /password_env without a user name/],
    ['socks5://alice@h:1080?password_env=1BAD', /not an environment variable name/],
    [`socks5://${'u'.repeat(256)}:pw@h:1080`, /user name is longer than SOCKS5 allows/],
    ['http://a%3Ab:pw@h:80', /user name contains ':'/],
    ['socks5://a:%E0%A4%A@h:1080', /not valid percent-encoding/],
    ['socks5://h%0d%0a:1080', /neither an IP address nor a host name/],
    ['socks5://', /no host/],
  ];
  for (const [url, message] of BAD) {
    it(`refuses ${JSON.stringify(url.slice(0, 40))}: ${message.source}`, () => {
      assert.throws(() => parseUpstream(url, { env: {} }), (error: any) => {
        assert.equal(error.code, 'ERR_UPSTREAM_URL_INVALID');
        assert.equal(error.name, 'UpstreamError');
        assert.match(error.message, message);
        return true;
      });
    });
  }

  it('never prints the credentials: toString, display, JSON, util.inspect, spread, and errors', () => {
    const upstream = parseUpstream('socks5://alice:hunter2@proxy.example:1080');
    assert.equal(upstream.password, 'hunter2');
    for (const text of [String(upstream), upstream.display, JSON.stringify({ upstream }), inspect(upstream), inspect({ ...upstream }), JSON.stringify({ ...upstream })]) {
      assert.ok(!text.includes('hunter2'), text);
    }
    assert.equal(String(upstream), 'socks5://proxy.example:1080');
    assert.equal(parseUpstream('http://[2001:db8::1]:3128').display, 'http://[2001:db8::1]:3128');
    for (const url of ['socks5://alice:hunter2@h:1080/x', 'socks5://alice:hunter2@h:99999', 'nope://alice:hunter2@h']) {
      assert.throws(() => parseUpstream(url), (error: Error) => !error.message.includes('hunter2'));
    }
  });

  it('takes an object, checked the same way', () => {
    assert.equal(parseUpstream({ protocol: 'socks5h', host: '::1', port: 1081, username: 'a', password: 'b' }).display, 'socks5h://[::1]:1081');
    assert.throws(() => parseUpstream({ protocol: 'socks5', host: 'h', port: 70000 }), { code: 'ERR_UPSTREAM_URL_INVALID' });
    assert.throws(() => parseUpstream(42 as any), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});
