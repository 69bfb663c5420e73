// The rules file (--config): JSON with named upstreams, rules in order and a
// default. Everything is checked before anything is used: an unknown key, a
// value of the wrong kind or a rule naming an upstream that is not there is
// refused with the file, the path in it (rules[3].port[1]) and why, as one
// ConfigError (ERR_PROXY_CONFIG). Nothing here matches connections.
import { readFileSync } from 'node:fs';
import { parseUpstream, type Upstream } from '../../upstream/url';
import { type Cidr, parseCidr } from './ip';

export const CONFIG_ERROR = 'ERR_PROXY_CONFIG';

/** A rules file refused: `file`, `path` (JSON path in it, '' for the whole) and `reason`. */
export class ConfigError extends Error {
  readonly code = CONFIG_ERROR;
  constructor(
    readonly file: string,
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${file}: ${path ? `${path}: ` : ''}${reason}`);
    this.name = 'ConfigError';
  }
}

/** What a rule (or the default) does with a connection or flow. */
export type RuleAction = { kind: 'direct' } | { kind: 'block' } | { kind: 'via'; name: string; upstream: Upstream };

export type Protocol = 'tcp' | 'udp';

/** One rule as checked: each match field absent (matches anything) or a non-empty list, any item of which matches. */
export interface Rule {
  /** Its place in the file: rules[N]. */
  path: string;
  /** What log lines call it: its `name`, or its path. */
  label: string;
  domain: string[] | undefined;
  cidr: Cidr[] | undefined;
  /** Inclusive ranges. */
  port: Array<[number, number]> | undefined;
  protocol: Protocol[] | undefined;
  process: string[] | undefined;
  action: RuleAction;
}

export interface RulesConfig {
  file: string;
  upstreams: ReadonlyMap<string, Upstream>;
  rules: Rule[];
  default: RuleAction;
}

export interface ParseOptions {
  /** UDP is relayed: a rule that can match a UDP flow may not name an http:// upstream (HTTP CONNECT carries no UDP). */
  udp?: boolean | undefined;
}

const TOP_KEYS = new Set(['upstreams', 'rules', 'default']);
const RULE_KEYS = new Set(['name', 'domain', 'cidr', 'port', 'protocol', 'process', 'via', 'action']);
const MATCH_KEYS = ['domain', 'cidr', 'port', 'protocol', 'process'] as const;
/** A DNS name or a `*.` wildcard over one: letters, digits, hyphens and underscores in dot-separated labels. */
const DOMAIN = /^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

const describe = (value: unknown) => (value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value === 'string' ? `"${value}"` : typeof value === 'object' ? 'an object' : String(value));

class Checker {
  constructor(private readonly file: string) {}

  fail(path: string, reason: string): never {
    throw new ConfigError(this.file, path, reason);
  }

  object(value: unknown, path: string, keys: Set<string>): Record<string, unknown> {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) this.fail(path, `wants an object, not ${describe(value)}`);
    for (const key of Object.keys(value)) {
      if (!keys.has(key)) this.fail(path ? `${path}.${key}` : key, `unknown key; known: ${[...keys].join(', ')}`);
    }
    return value as Record<string, unknown>;
  }

  /** A value or a non-empty list of them, each checked by `item` at its own path. */
  list<T>(value: unknown, path: string, item: (value: unknown, path: string) => T): T[] {
    if (!Array.isArray(value)) return [item(value, path)];
    if (value.length === 0) this.fail(path, 'an empty list matches nothing; leave the field out to match anything');
    return value.map((each, i) => item(each, `${path}[${i}]`));
  }

  string(value: unknown, path: string): string {
    if (typeof value !== 'string' || value === '') this.fail(path, `wants a non-empty string, not ${describe(value)}`);
    return value;
  }
}

function port(check: Checker, value: unknown, path: string): [number, number] {
  const isPort = (n: number) => Number.isInteger(n) && n >= 0 && n <= 65535;
  if (typeof value === 'number') {
    if (!isPort(value)) check.fail(path, `${value} is not a port (a whole number from 0 to 65535)`);
    return [value, value];
  }
  const match = typeof value === 'string' ? /^(\d{1,5})-(\d{1,5})$/.exec(value) : null;
  if (!match) check.fail(path, `wants a port number or a range "FIRST-LAST", not ${describe(value)}`);
  const [first, last] = [Number(match[1]), Number(match[2])];
  if (!isPort(first) || !isPort(last) || first > last) check.fail(path, `"${value}" is not a range of ports from 0 to 65535, first no greater than last`);
  return [first, last];
}

function domain(check: Checker, value: unknown, path: string): string {
  const text = check.string(value, path).toLowerCase();
  const plain = text.endsWith('.') ? text.slice(0, -1) : text;
  if (!DOMAIN.test(plain) || plain.length > 253) check.fail(path, `"${text}" is not a domain name or "*." and one (e.g. "example.com", "*.example.com")`);
  return plain;
}

function action(check: Checker, rule: Record<string, unknown>, path: string, upstreams: ReadonlyMap<string, Upstream>): RuleAction {
  const hasVia = rule.via !== undefined;
  const hasAction = rule.action !== undefined;
  if (hasVia === hasAction) check.fail(path, 'give exactly one of "via": UPSTREAM and "action": "direct" | "block"');
  if (hasAction) {
    if (rule.action !== 'direct' && rule.action !== 'block') check.fail(`${path}.action`, `wants "direct" or "block", not ${describe(rule.action)}`);
    return { kind: rule.action };
  }
  return via(check, rule.via, `${path}.via`, upstreams);
}

function via(check: Checker, value: unknown, path: string, upstreams: ReadonlyMap<string, Upstream>): RuleAction {
  const name = check.string(value, path);
  const upstream = upstreams.get(name);
  if (!upstream) check.fail(path, `no upstream named "${name}" in "upstreams"${upstreams.size ? ` (there are: ${[...upstreams.keys()].join(', ')})` : ''}`);
  return { kind: 'via', name, upstream };
}

function rule(check: Checker, value: unknown, path: string, upstreams: ReadonlyMap<string, Upstream>): Rule {
  const raw = check.object(value, path, RULE_KEYS);
  const name = raw.name === undefined ? undefined : check.string(raw.name, `${path}.name`);
  const field = <T>(key: (typeof MATCH_KEYS)[number], item: (value: unknown, path: string) => T) =>
    raw[key] === undefined ? undefined : check.list(raw[key], `${path}.${key}`, item);
  return {
    path,
    label: name ?? path,
    domain: field('domain', (v, p) => domain(check, v, p)),
    cidr: field('cidr', (v, p) => {
      const parsed = parseCidr(check.string(v, p));
      return typeof parsed === 'string' ? check.fail(p, parsed) : parsed;
    }),
    port: field('port', (v, p) => port(check, v, p)),
    protocol: field('protocol', (v, p) => (v === 'tcp' || v === 'udp' ? v : check.fail(p, `wants "tcp" or "udp", not ${describe(v)}`))),
    process: field('process', (v, p) => check.string(v, p)),
    action: action(check, raw, path, upstreams),
  };
}

function upstreamsOf(check: Checker, value: unknown): Map<string, Upstream> {
  const upstreams = new Map<string, Upstream>();
  if (value === undefined) return upstreams;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) check.fail('upstreams', `wants an object of NAME: URL, not ${describe(value)}`);
  for (const [name, url] of Object.entries(value)) {
    const path = `upstreams.${name}`;
    try {
      upstreams.set(name, parseUpstream(check.string(url, path)));
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      check.fail(path, (error as Error).message);
    }
  }
  return upstreams;
}

/** A rule that can match a UDP flow must not go through an http:// upstream. */
function checkUdp(check: Checker, config: RulesConfig): void {
  const http = (action: RuleAction) => action.kind === 'via' && action.upstream.protocol === 'http';
  for (const each of config.rules) {
    if (http(each.action) && (each.protocol === undefined || each.protocol.includes('udp'))) {
      check.fail(`${each.path}.via`, `"${(each.action as { name: string }).name}" is an http:// upstream (HTTP CONNECT carries no UDP) and this rule can match UDP flows; add "protocol": "tcp"`);
    }
  }
  if (http(config.default)) check.fail('default', 'an http:// upstream carries no UDP, and UDP is relayed: use a socks5:// one, or "direct" with rules for TCP');
}

/** Checks a parsed JSON document as a rules config from `file`; throws ConfigError. */
export function checkConfig(document: unknown, file: string, options: ParseOptions = {}): RulesConfig {
  const check = new Checker(file);
  const top = check.object(document, '', TOP_KEYS);
  const upstreams = upstreamsOf(check, top.upstreams);
  if (!Array.isArray(top.rules)) check.fail('rules', top.rules === undefined ? 'is missing: a list of rules (it may be empty)' : `wants a list, not ${describe(top.rules)}`);
  const rules = (top.rules as unknown[]).map((each, i) => rule(check, each, `rules[${i}]`, upstreams));
  let fallback: RuleAction = { kind: 'direct' };
  if (top.default !== undefined) {
    if (top.default === 'direct' || top.default === 'block') fallback = { kind: top.default };
    else if (top.default !== null && typeof top.default === 'object' && !Array.isArray(top.default)) {
      fallback = via(check, check.object(top.default, 'default', new Set(['via'])).via, 'default.via', upstreams);
    } else check.fail('default', `wants "direct", "block" or { "via": UPSTREAM }, not ${describe(top.default)}`);
  }
  const config: RulesConfig = { file, upstreams, rules, default: fallback };
  if (options.udp) checkUdp(check, config);
  return config;
}

/** Reads and checks the rules file; throws ConfigError (unreadable, not JSON, or not a valid config). */
export function loadConfig(file: string, options: ParseOptions = {}): RulesConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, '', `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(file, '', `is not JSON: ${(error as Error).message}`);
  }
  return checkConfig(document, file, options);
}
