// The rules of --config, without a network: the file checked (every refusal
// names the file, the path in it and why), each match field and action, first
// match wins, the default, --explain's queries, reload keeping a good config
// over a bad one, and the matcher's cost with 1,000 rules.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prng } from './helpers';
import {
  checkConfig,
  ConfigError,
  describeVerdict,
  inCidr,
  parseAddress,
  parseCidr,
  parseExplainQuery,
  RuleMatcher,
  RuleSet,
  type MatchFacts,
} from '../dist/proxy/rules';

const FILE = '/etc/rules.json';

function refusal(document: unknown, path: string, reason: RegExp, options = {}): void {
  assert.throws(
    () => checkConfig(document, FILE, options),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.code, 'ERR_PROXY_CONFIG');
      assert.equal(error.file, FILE);
      assert.equal(error.path, path, error.message);
      assert.match(error.reason, reason);
      assert.ok(error.message.startsWith(`${FILE}: ${path ? `${path}: ` : ''}`), error.message);
      return true;
    },
  );
}

const matcher = (rules: unknown[], extra: object = {}, options = {}) => new RuleMatcher(checkConfig({ upstreams: { corp: 'http://10.0.0.9:3128', tor: 'socks5h://127.0.0.1:9050' }, rules, ...extra }, FILE), options);
const tcp = (address: string | undefined, port: number, more: Partial<MatchFacts> = {}): MatchFacts => ({ protocol: 'tcp', address, port, domain: undefined, ...more });
const labelOf = (m: RuleMatcher, facts: MatchFacts) => m.match(facts).label;

describe('rules: the config file is checked whole', function () {
  it('the issue\'s example is accepted as written', function () {
    const config = checkConfig(
      {
        upstreams: { corp: 'http://proxy.example:3128', tor: 'socks5h://127.0.0.1:9050' },
        rules: [
          { domain: ['*.onion'], via: 'tor' },
          { process: ['chrome.exe', 'curl'], port: [80, 443], via: 'corp' },
          { cidr: ['10.0.0.0/8', 'fd00::/8'], action: 'direct' },
          { domain: ['ads.example', '*.tracker.example'], action: 'block' },
          { protocol: 'udp', port: [443], action: 'block' },
        ],
        default: 'direct',
      },
      FILE,
    );
    assert.equal(config.rules.length, 5);
    assert.deepEqual(config.rules[1].port, [[80, 80], [443, 443]]);
    assert.equal(config.default.kind, 'direct');
  });

  const refused: Array<[string, unknown, string, RegExp]> = [
    ['not an object', [], '', /wants an object/],
    ['an unknown top-level key', { rules: [], rule: [] }, 'rule', /unknown key/],
    ['no rules', { default: 'direct' }, 'rules', /missing/],
    ['rules not a list', { rules: {} }, 'rules', /wants a list/],
    ['an unknown key in a rule', { rules: [{ action: 'direct' }, { port: 1, action: 'block', prot: 'tcp' }] }, 'rules[1].prot', /unknown key/],
    ['a bad port in a list', { rules: [{}, {}, {}, { port: [80, 70000], action: 'block' }].map((r, i) => (i < 3 ? { action: 'direct' } : r)) }, 'rules[3].port[1]', /not a port/],
    ['a reversed range', { rules: [{ port: '90-80', action: 'block' }] }, 'rules[0].port', /first no greater than last/],
    ['a range with junk', { rules: [{ port: ['1-2-3'], action: 'block' }] }, 'rules[0].port[0]', /range/],
    ['a fractional port', { rules: [{ port: 80.5, action: 'block' }] }, 'rules[0].port', /not a port/],
    ['an empty list', { rules: [{ domain: [], action: 'block' }] }, 'rules[0].domain', /empty list/],
    ['a bad domain', { rules: [{ domain: ['ok.example', 'bad domain'], action: 'block' }] }, 'rules[0].domain[1]', /not a domain/],
    ['a wildcard in the middle', { rules: [{ domain: 'a.*.example', action: 'block' }] }, 'rules[0].domain', /not a domain/],
    ['a bad cidr', { rules: [{ cidr: ['10.0.0.0/33'], action: 'block' }] }, 'rules[0].cidr[0]', /prefix/],
    ['a cidr with host bits', { rules: [{ cidr: '10.0.0.1/8', action: 'block' }] }, 'rules[0].cidr', /host bits/],
    ['a cidr of a name', { rules: [{ cidr: 'example.com/8', action: 'block' }] }, 'rules[0].cidr', /not an IP address/],
    ['a short v4-mapped cidr', { rules: [{ cidr: '::ffff:0:0/90', action: 'block' }] }, 'rules[0].cidr', /at least 96/],
    ['a bad protocol', { rules: [{ protocol: ['tcp', 'icmp'], action: 'block' }] }, 'rules[0].protocol[1]', /"tcp" or "udp"/],
    ['an empty process', { rules: [{ process: '', action: 'block' }] }, 'rules[0].process', /non-empty string/],
    ['both via and action', { upstreams: { a: 'socks5://127.0.0.1:1080' }, rules: [{ via: 'a', action: 'block' }] }, 'rules[0]', /exactly one/],
    ['neither via nor action', { rules: [{ port: 1 }] }, 'rules[0]', /exactly one/],
    ['a bad action', { rules: [{ action: 'reject' }] }, 'rules[0].action', /"direct" or "block"/],
    ['a dangling upstream', { upstreams: { corp: 'http://127.0.0.1:3128' }, rules: [{ action: 'direct' }, { via: 'tor' }] }, 'rules[1].via', /no upstream named "tor".*corp/],
    ['a bad upstream URL', { upstreams: { corp: 'ftp://127.0.0.1:21' }, rules: [] }, 'upstreams.corp', /ftp|upstream/i],
    ['upstreams not an object', { upstreams: ['x'], rules: [] }, 'upstreams', /NAME: URL/],
    ['a bad default', { rules: [], default: 'allow' }, 'default', /"direct", "block" or \{ "via"/],
    ['a default via nowhere', { rules: [], default: { via: 'nowhere' } }, 'default.via', /no upstream named/],
    ['a name that is not a string', { rules: [{ name: 3, action: 'block' }] }, 'rules[0].name', /non-empty string/],
  ];
  for (const [label, document, path, reason] of refused) {
    it(`refused: ${label} (${path || 'the whole'})`, function () {
      refusal(document, path, reason);
    });
  }

  it('with UDP relayed, a rule that can match UDP may not go through an http:// upstream; one limited to tcp may', function () {
    const upstreams = { corp: 'http://127.0.0.1:3128' };
    refusal({ upstreams, rules: [{ port: 443, via: 'corp' }] }, 'rules[0].via', /HTTP CONNECT carries no UDP/, { udp: true });
    refusal({ upstreams, rules: [], default: { via: 'corp' } }, 'default', /carries no UDP/, { udp: true });
    checkConfig({ upstreams, rules: [{ protocol: 'tcp', via: 'corp' }] }, FILE, { udp: true });
    checkConfig({ upstreams, rules: [{ port: 443, via: 'corp' }] }, FILE, { udp: false });
  });
});

describe('rules: matching', function () {
  it('domain: exact, case-insensitive, a trailing dot ignored; *.x any subdomain but not x itself nor a suffix without the dot', function () {
    const m = matcher([{ domain: ['Exact.Example'], action: 'block' }, { domain: '*.wild.example', action: 'block', name: 'wild' }]);
    const of = (domain: string | undefined) => labelOf(m, tcp('192.0.2.1', 443, { domain }));
    assert.equal(of('exact.example'), 'rules[0]');
    assert.equal(of('EXACT.example.'), 'rules[0]');
    assert.equal(of('www.exact.example'), 'default', 'an exact name does not cover its subdomains');
    assert.equal(of('a.wild.example'), 'wild');
    assert.equal(of('a.b.WILD.example'), 'wild');
    assert.equal(of('wild.example'), 'default', '*.x does not match x');
    assert.equal(of('notwild.example'), 'default', '*.x does not match a name that merely ends in x');
    assert.equal(of(undefined), 'default', 'no domain learned: no domain rule matches');
  });

  it('cidr: v4 and v6 prefixes, exact edges, v4-mapped addresses and blocks', function () {
    const m = matcher([
      { cidr: '10.1.0.0/16', action: 'block', name: 'ten' },
      { cidr: ['fd00::/8'], action: 'block', name: 'ula' },
      { cidr: '::ffff:192.168.0.0/112', action: 'block', name: 'mapped-block' },
      { cidr: '0.0.0.0/0', port: 9, action: 'block', name: 'all-v4' },
      { cidr: '::/0', port: 9, action: 'block', name: 'all-v6' },
      { cidr: '203.0.113.7', action: 'block', name: 'one' },
    ]);
    const of = (address: string | undefined, port = 443) => labelOf(m, tcp(address, port));
    assert.equal(of('10.1.0.0'), 'ten');
    assert.equal(of('10.1.255.255'), 'ten');
    assert.equal(of('10.0.255.255'), 'default', 'just below the block');
    assert.equal(of('10.2.0.0'), 'default', 'just above the block');
    assert.equal(of('::ffff:10.1.2.3'), 'ten', 'a v4-mapped address is its IPv4 address');
    assert.equal(of('fd12:3456::1'), 'ula');
    assert.equal(of('fe00::1'), 'default');
    assert.equal(of('192.168.4.5'), 'mapped-block', 'a block written v4-mapped is the IPv4 block');
    assert.equal(of('192.169.0.0'), 'default');
    assert.equal(of('1.2.3.4', 9), 'all-v4');
    assert.equal(of('2001:db8::1', 9), 'all-v6', '::/0 matches IPv6');
    assert.equal(of('203.0.113.7'), 'one');
    assert.equal(of('203.0.113.8'), 'default');
    assert.equal(of(undefined), 'default', 'no address (a name): no cidr matches');
    assert.equal(of('example.com'), 'default');
  });

  it('cidr parsing: every prefix length of v4 and v6 matches exactly the addresses it should', function () {
    for (let prefix = 0; prefix <= 32; prefix++) {
      const cidr = parseCidr(`128.0.0.0/${Math.max(prefix, 1)}`);
      assert.ok(typeof cidr !== 'string');
      assert.equal(inCidr(parseAddress('128.0.0.0')!, cidr), true);
    }
    for (let prefix = 1; prefix <= 128; prefix++) {
      const cidr = parseCidr(`::/${prefix}`);
      assert.ok(typeof cidr !== 'string', String(cidr));
      // The address with only bit `prefix` (1-based) set lies outside ::/prefix; the one with bit prefix+1 set inside.
      const outside = new Array(8).fill(0);
      outside[Math.floor((prefix - 1) / 16)] = 1 << (15 - ((prefix - 1) % 16));
      const text = outside.map((n) => n.toString(16)).join(':');
      assert.equal(inCidr(parseAddress(text)!, cidr), false, `${text} in ::/${prefix}`);
      if (prefix < 128) {
        const inside = new Array(8).fill(0);
        inside[Math.floor(prefix / 16)] = 1 << (15 - (prefix % 16));
        const insideText = inside.map((n) => n.toString(16)).join(':');
        if (parseAddress(insideText)!.family === 6) assert.equal(inCidr(parseAddress(insideText)!, cidr), true, `${insideText} in ::/${prefix}`);
      }
    }
  });

  it('port: single numbers and inclusive ranges', function () {
    const m = matcher([{ port: [22, '8000-8080'], action: 'block' }]);
    for (const [port, label] of [[22, 'rules[0]'], [23, 'default'], [7999, 'default'], [8000, 'rules[0]'], [8080, 'rules[0]'], [8081, 'default']] as const) {
      assert.equal(labelOf(m, tcp('192.0.2.1', port)), label, `port ${port}`);
    }
  });

  it('protocol: tcp or udp', function () {
    const m = matcher([{ protocol: 'udp', action: 'block' }]);
    assert.equal(labelOf(m, { ...tcp('192.0.2.1', 443), protocol: 'udp' }), 'rules[0]');
    assert.equal(labelOf(m, tcp('192.0.2.1', 443)), 'default');
  });

  it('process: a name matches the name, a path the path; case-sensitive on Linux, folded on Windows; no process matches no process rule', function () {
    const rules = [{ process: ['curl', '/usr/bin/wget'], action: 'block' }];
    const linux = matcher(rules, {}, { foldProcess: false });
    const windows = matcher([{ process: ['Chrome.exe', 'C:\\Tools\\Curl.exe'], action: 'block' }], {}, { foldProcess: true });
    const with_ = (name: string, path?: string) => tcp('192.0.2.1', 80, { process: { pid: 42, name, path } });
    assert.equal(labelOf(linux, with_('curl', '/usr/local/bin/curl')), 'rules[0]');
    assert.equal(labelOf(linux, with_('wget', '/usr/bin/wget')), 'rules[0]');
    assert.equal(labelOf(linux, with_('wget', '/opt/wget')), 'default', 'a path rule wants that path');
    assert.equal(labelOf(linux, with_('Curl')), 'default', 'case-sensitive on Linux');
    assert.equal(labelOf(linux, tcp('192.0.2.1', 80)), 'default');
    assert.equal(labelOf(windows, with_('chrome.EXE', 'C:\\Program Files\\chrome.exe')), 'rules[0]');
    assert.equal(labelOf(windows, with_('other.exe', 'c:\\tools\\curl.exe')), 'rules[0]');
    assert.equal(labelOf(windows, with_('curl.exe', 'C:\\elsewhere\\curl.exe')), 'default');
  });

  it('all given fields must match; the first matching rule wins; none matching, the default decides', function () {
    const m = matcher(
      [
        { domain: 'a.example', port: 443, action: 'block', name: 'a-tls' },
        { domain: 'a.example', via: 'tor', name: 'a-any' },
        { port: 443, via: 'corp' },
      ],
      { default: 'block' },
    );
    assert.equal(labelOf(m, tcp('192.0.2.1', 443, { domain: 'a.example' })), 'a-tls');
    assert.equal(labelOf(m, tcp('192.0.2.1', 80, { domain: 'a.example' })), 'a-any', 'the port differs: the next rule');
    const third = m.match(tcp('192.0.2.1', 443, { domain: 'b.example' }));
    assert.equal(third.label, 'rules[2]');
    assert.equal(third.action.kind, 'via');
    assert.equal(third.action.kind === 'via' && third.action.upstream.display, 'http://10.0.0.9:3128');
    const fallback = m.match(tcp('192.0.2.1', 80));
    assert.deepEqual([fallback.label, fallback.rule, fallback.action.kind], ['default', undefined, 'block']);
    assert.equal(m.wantsDomain, true);
    assert.equal(matcher([{ port: 1, action: 'block' }]).wantsDomain, false);
  });

  it('a default through an upstream', function () {
    const m = matcher([], { default: { via: 'tor' } });
    assert.equal(describeVerdict(m.match(tcp('192.0.2.1', 80))), 'default: via tor (socks5h://127.0.0.1:9050)');
  });

  it('1,000 rules: a connection that matches none is decided in under 15 µs (a plain scan took ~45)', function () {
    const rules = Array.from({ length: 1000 }, (_, i) => {
      switch (i % 4) {
        case 0: return { domain: [`site${i}.example`, `*.cdn${i}.example`], action: 'block' };
        case 1: return { cidr: [`10.${i % 250}.${(i >> 8) % 250}.0/24`, `fd00:${i.toString(16)}::/32`], action: 'direct' };
        case 2: return { process: [`app${i}`, `/opt/app${i}/bin/app`], port: [443, '8000-8100'], via: 'corp' };
        default: return { protocol: 'udp', port: [i + 1000], domain: `*.q${i}.example`, action: 'block' };
      }
    });
    const m = matcher(rules);
    const facts = tcp('192.0.2.77', 443, { domain: 'www.nothing.example', process: { pid: 1, name: 'curl', path: '/usr/bin/curl' } });
    assert.equal(m.match(facts).label, 'default');
    assert.equal(m.match(tcp('10.201.0.9', 443)).label, 'rules[201]');
    for (let i = 0; i < 2000; i++) m.match(facts);
    const rounds = 20_000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) m.match(facts);
    const perMatch = Number(process.hrtime.bigint() - started) / rounds / 1000;
    console.log(`      1,000 rules, no match: ${perMatch.toFixed(2)} µs per connection`);
    // Under qemu-user (npm run test:arm64) JavaScript runs 2-4 times slower (13-26 µs there, 4-7 natively on the same
    // loaded machine): the bound is 4 times the native one there, so only a gross slowdown shows; the timing that
    // counts is native. The index's answers are checked against a plain scan below, emulated or not.
    const bound = process.env.WFP_REDIRECT_QEMU_USER ? 60 : 15;
    if (bound !== 15) console.warn(`    !!! under qemu-user: the no-match time is bounded at ${bound} µs, not 15 (emulated JavaScript is slower)`);
    assert.ok(perMatch < bound, `${perMatch} µs per match`);
  });
});

describe('rules: the index answers as a plain scan does', function () {
  it('5,000 random connections against 300 random rules: the same rule as checking each rule in order', function () {
    const random = prng(26);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
    const names = ['a.example', 'b.example', 'x.a.example', 'y.x.a.example', 'c.test'];
    const patterns = ['a.example', '*.a.example', '*.example', 'b.example', '*.x.a.example', 'c.test', '*.test'];
    const blocks = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '0.0.0.0/0', '192.168.0.0/16', 'fd00::/8', '2001:db8::/32', '::/0', '10.1.2.3'];
    const addresses = ['10.1.2.3', '10.9.9.9', '192.168.1.1', '8.8.8.8', 'fd00::1', '2001:db8::5', '2001:db9::1', '::ffff:10.1.2.4'];
    const processes = ['curl', 'wget', '/usr/bin/curl', '/opt/x/wget'];
    const some = <T>(items: readonly T[]) => Array.from({ length: 1 + Math.floor(random() * 2) }, () => pick(items));
    const rules = Array.from({ length: 300 }, () => {
      const rule: Record<string, unknown> = { action: pick(['direct', 'block']) };
      if (random() < 0.4) rule.domain = some(patterns);
      if (random() < 0.3) rule.cidr = some(blocks);
      if (random() < 0.3) rule.port = some([80, 443, '1-100', '440-450']);
      if (random() < 0.2) rule.protocol = pick(['tcp', 'udp']);
      if (random() < 0.3) rule.process = some(processes);
      return rule;
    });
    const m = matcher(rules, {}, { foldProcess: false });
    const config = m.config;
    const inPorts = (port: number, ranges: Array<[number, number]>) => ranges.some(([a, b]) => port >= a && port <= b);
    const domainMatches = (domain: string, pattern: string) => (pattern.startsWith('*.') ? domain.endsWith(pattern.slice(1)) : domain === pattern);
    for (let n = 0; n < 5000; n++) {
      const path = random() < 0.7 ? pick(processes) : undefined;
      const facts: MatchFacts = {
        protocol: pick(['tcp', 'udp'] as const),
        address: random() < 0.9 ? pick(addresses) : undefined,
        port: pick([80, 443, 22, 445, 8080]),
        domain: random() < 0.7 ? pick(names) : undefined,
        process: path === undefined ? undefined : { pid: 1, name: path.split('/').pop()!, path: path.includes('/') ? path : undefined },
      };
      const address = facts.address === undefined ? undefined : parseAddress(facts.address);
      const expected = config.rules.find((rule) =>
        (!rule.protocol || rule.protocol.includes(facts.protocol)) &&
        (!rule.port || inPorts(facts.port, rule.port)) &&
        (!rule.domain || (facts.domain !== undefined && rule.domain.some((pattern) => domainMatches(facts.domain!, pattern)))) &&
        (!rule.cidr || (address !== undefined && rule.cidr.some((cidr) => inCidr(address, cidr)))) &&
        (!rule.process || (facts.process !== undefined && rule.process.some((item) => item === (item.includes('/') ? facts.process!.path : facts.process!.name)))),
      );
      assert.equal(m.match(facts).label, expected?.label ?? 'default', JSON.stringify(facts));
    }
  });
});

describe('rules: --explain queries', function () {
  it('reads protocol, a name or an IP with a port, process, pid and domain', function () {
    assert.deepEqual(parseExplainQuery('tcp example.com:443 process=curl'), {
      protocol: 'tcp', address: undefined, port: 443, domain: 'example.com', process: { pid: 0, name: 'curl', path: undefined },
    });
    assert.deepEqual(parseExplainQuery('udp [2001:db8::1]:443 domain=Q.Example process=/usr/bin/curl pid=7'), {
      protocol: 'udp', address: '2001:db8::1', port: 443, domain: 'q.example', process: { pid: 7, name: 'curl', path: '/usr/bin/curl' },
    });
    assert.deepEqual(parseExplainQuery('10.0.0.1:22'), { protocol: 'tcp', address: '10.0.0.1', port: 22, domain: undefined });
  });
  for (const bad of ['', 'tcp', 'tcp example.com', 'tcp example.com:99999', 'tcp a:1 colour=red', 'tcp a:1 process=', 'icmp a:1']) {
    it(`refuses "${bad}"`, function () {
      assert.throws(() => parseExplainQuery(bad), { code: 'ERR_PROXY_EXPLAIN_QUERY' });
    });
  }
});

describe('rules: reload', function () {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'wfp-rules-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a good new file is in force at once; a bad one is refused and the old stays in force', function () {
    const file = join(dir, 'rules.json');
    writeFileSync(file, JSON.stringify({ rules: [{ port: 1, action: 'block' }] }));
    const set = new RuleSet(file);
    assert.equal(set.match(tcp('192.0.2.1', 1)).action.kind, 'block');
    writeFileSync(file, JSON.stringify({ rules: [{ port: 2, action: 'block' }] }));
    set.reload();
    assert.equal(set.match(tcp('192.0.2.1', 1)).action.kind, 'direct');
    assert.equal(set.match(tcp('192.0.2.1', 2)).action.kind, 'block');
    writeFileSync(file, JSON.stringify({ rules: [{ port: 'x', action: 'block' }] }));
    assert.throws(() => set.reload(), (error: ConfigError) => error.code === 'ERR_PROXY_CONFIG' && error.path === 'rules[0].port');
    assert.equal(set.match(tcp('192.0.2.1', 2)).action.kind, 'block', 'the old rules stay in force');
    writeFileSync(file, '{ "rules": [');
    assert.throws(() => set.reload(), /is not JSON/);
    rmSync(file);
    assert.throws(() => set.reload(), /cannot be read \(ENOENT\)/);
    assert.equal(set.match(tcp('192.0.2.1', 2)).action.kind, 'block');
  });

  it('watch: a change of the file calls back once, after it has been quiet', async function () {
    const file = join(dir, 'watched.json');
    writeFileSync(file, JSON.stringify({ rules: [] }));
    const set = new RuleSet(file);
    let calls = 0;
    set.watch(() => calls++, 100);
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      for (let i = 0; i < 3; i++) writeFileSync(file, JSON.stringify({ rules: [{ port: i, action: 'block' }] }));
      writeFileSync(join(dir, 'other.json'), '{}');
      for (let waited = 0; calls === 0 && waited < 3000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(calls, 1);
    } finally {
      set.unwatch();
    }
  });
});
