// The rules, compiled for matching: each field of each rule becomes sets and
// integer ranges once, when the config is loaded, and a connection's facts
// are prepared once (its address parsed, its domain's parent names listed),
// so that going down 1,000 rules is a few comparisons and set lookups each,
// with no allocation per rule. First match wins; none matching, the default.
import { inCidr, parseAddress, type Cidr, type ParsedAddress } from './ip';
import type { ProcessInfo } from '../../process/types';
import type { Protocol, Rule, RuleAction, RulesConfig } from './config';

/** What is known of a connection or flow when it is decided. */
export interface MatchFacts {
  protocol: Protocol;
  /** Its destination's IP address; a host name or undefined matches no `cidr`. */
  address: string | undefined;
  port: number;
  /** The name it was learned to go to (TLS SNI, HTTP Host, QUIC); undefined matches no `domain`. */
  domain: string | undefined;
  process?: ProcessInfo | undefined;
}

/** The rule that decided (undefined: the default) and what it does. */
export interface Verdict {
  rule: Rule | undefined;
  /** The rule's name, its path (rules[2]), or "default". */
  label: string;
  action: RuleAction;
}

interface Compiled {
  rule: Rule;
  verdict: Verdict;
  /** Exact names, and the names whose subdomains match (from "*.name"); undefined: any domain. */
  exact: Set<string> | undefined;
  parents: Set<string> | undefined;
  cidr: Cidr[] | undefined;
  /** first, last, first, last, ... inclusive. */
  ports: Int32Array | undefined;
  /** Bit 1: tcp, bit 2: udp; 3 for any. */
  protocols: number;
  processNames: Set<string> | undefined;
  processPaths: Set<string> | undefined;
}

const PROTOCOL_BIT: Record<Protocol, number> = { tcp: 1, udp: 2 };

function compile(rule: Rule, foldProcess: boolean): Compiled {
  const fold = (text: string) => (foldProcess ? text.toLowerCase() : text);
  const domains = rule.domain ?? [];
  const paths = rule.process?.filter((item) => item.includes('/') || item.includes('\\'));
  const names = rule.process?.filter((item) => !item.includes('/') && !item.includes('\\'));
  return {
    rule,
    verdict: { rule, label: rule.label, action: rule.action },
    exact: rule.domain && new Set(domains.filter((name) => !name.startsWith('*.'))),
    parents: rule.domain && new Set(domains.filter((name) => name.startsWith('*.')).map((name) => name.slice(2))),
    cidr: rule.cidr,
    ports: rule.port && Int32Array.from(rule.port.flat()),
    protocols: rule.protocol ? rule.protocol.reduce((bits, protocol) => bits | PROTOCOL_BIT[protocol], 0) : 3,
    processNames: names && new Set(names.map(fold)),
    processPaths: paths && new Set(paths.map(fold)),
  };
}

/** A connection's facts made ready for matching, once per connection. */
interface Prepared {
  protocol: number;
  address: ParsedAddress | undefined;
  port: number;
  domain: string | undefined;
  /** The domain's proper parents: a.b.example → b.example, example. */
  parents: string[];
  processName: string | undefined;
  processPath: string | undefined;
}

function matches(rule: Compiled, facts: Prepared): boolean {
  if ((rule.protocols & facts.protocol) === 0) return false;
  if (rule.ports) {
    let found = false;
    for (let i = 0; i < rule.ports.length && !found; i += 2) found = facts.port >= rule.ports[i] && facts.port <= rule.ports[i + 1];
    if (!found) return false;
  }
  // Plain loops, not some(): no closure per rule and connection.
  if (rule.exact) {
    if (facts.domain === undefined) return false;
    let found = rule.exact.has(facts.domain);
    for (let i = 0; i < facts.parents.length && !found; i++) found = rule.parents!.has(facts.parents[i]);
    if (!found) return false;
  }
  if (rule.cidr) {
    if (facts.address === undefined) return false;
    let found = false;
    for (let i = 0; i < rule.cidr.length && !found; i++) found = inCidr(facts.address, rule.cidr[i]);
    if (!found) return false;
  }
  if (rule.processNames) {
    const name = facts.processName;
    const path = facts.processPath;
    if (!(name !== undefined && rule.processNames.has(name)) && !(path !== undefined && rule.processPaths!.has(path))) return false;
  }
  return true;
}

/**
 * Which rules can match a connection at all, by the one field of each rule
 * most likely to rule it out: its domain names, else its process names and
 * paths, else its address blocks (by their first 8 or 16 bits). A rule with
 * none of these (or a block too short to key) is always a candidate. Each
 * list is in rule order, so the first match is the least index over the
 * lists' first matches.
 */
class CandidateIndex {
  readonly always: number[] = [];
  readonly byName = new Map<string, number[]>();
  readonly byParent = new Map<string, number[]>();
  readonly byProcess = new Map<string, number[]>();
  /** IPv4: the first octet; IPv6: 256 + the first 16 bits. */
  readonly byPrefix = new Map<number, number[]>();

  constructor(rules: Compiled[]) {
    rules.forEach((rule, index) => {
      if (rule.exact) {
        for (const name of rule.exact) add(this.byName, name, index);
        for (const name of rule.parents!) add(this.byParent, name, index);
      } else if (rule.processNames) {
        for (const name of new Set([...rule.processNames, ...rule.processPaths!])) add(this.byProcess, name, index);
      } else if (rule.cidr && rule.cidr.every((cidr) => cidr.prefix >= (cidr.family === 4 ? 8 : 16))) {
        for (const key of new Set(rule.cidr.map(prefixKeyOfCidr))) add(this.byPrefix, key, index);
      } else this.always.push(index);
    });
  }
}

function add<K>(map: Map<K, number[]>, key: K, index: number): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [index]);
  else if (list[list.length - 1] !== index) list.push(index);
}

function prefixKeyOfCidr(cidr: Cidr): number {
  return cidr.family === 4 ? cidr.words[3] >>> 24 : 256 + (cidr.words[0] >>> 16);
}

function prefixKey(address: ParsedAddress): number {
  return address.family === 4 ? address.words[3] >>> 24 : 256 + (address.words[0] >>> 16);
}

export class RuleMatcher {
  readonly config: RulesConfig;
  /** Whether any rule asks for a domain: then connections are sniffed for one. */
  readonly wantsDomain: boolean;
  /** Whether any rule asks for the process. */
  readonly wantsProcess: boolean;
  private readonly compiled: Compiled[];
  private readonly index: CandidateIndex;
  private readonly fallback: Verdict;
  private readonly foldProcess: boolean;

  /** `foldProcess`: process names and paths compare case-insensitively (Windows, the default there). */
  constructor(config: RulesConfig, options: { foldProcess?: boolean } = {}) {
    this.config = config;
    this.foldProcess = options.foldProcess ?? process.platform === 'win32';
    this.compiled = config.rules.map((rule) => compile(rule, this.foldProcess));
    this.index = new CandidateIndex(this.compiled);
    this.fallback = { rule: undefined, label: 'default', action: config.default };
    this.wantsDomain = config.rules.some((rule) => rule.domain !== undefined);
    this.wantsProcess = config.rules.some((rule) => rule.process !== undefined);
  }

  /** The first rule that matches `facts`, or the default. */
  match(facts: MatchFacts): Verdict {
    const prepared = this.prepare(facts);
    const index = this.index;
    let best = this.scan(index.always, prepared, this.compiled.length);
    if (prepared.domain !== undefined) {
      best = this.scan(index.byName.get(prepared.domain), prepared, best);
      for (let i = 0; i < prepared.parents.length; i++) best = this.scan(index.byParent.get(prepared.parents[i]), prepared, best);
    }
    if (prepared.processName !== undefined) best = this.scan(index.byProcess.get(prepared.processName), prepared, best);
    if (prepared.processPath !== undefined) best = this.scan(index.byProcess.get(prepared.processPath), prepared, best);
    if (prepared.address !== undefined) best = this.scan(index.byPrefix.get(prefixKey(prepared.address)), prepared, best);
    return best < this.compiled.length ? this.compiled[best].verdict : this.fallback;
  }

  /** The index of the first rule in `list` before `best` that matches, or `best`. */
  private scan(list: number[] | undefined, facts: Prepared, best: number): number {
    if (list === undefined) return best;
    for (let i = 0; i < list.length && list[i] < best; i++) if (matches(this.compiled[list[i]], facts)) return list[i];
    return best;
  }

  private prepare(facts: MatchFacts): Prepared {
    const domain = facts.domain === undefined ? undefined : facts.domain.toLowerCase().replace(/\.$/, '');
    const parents: string[] = [];
    if (domain !== undefined && this.wantsDomain) {
      for (let dot = domain.indexOf('.'); dot !== -1; dot = domain.indexOf('.', dot + 1)) parents.push(domain.slice(dot + 1));
    }
    const fold = (text: string | undefined) => (text !== undefined && this.foldProcess ? text.toLowerCase() : text);
    return {
      protocol: PROTOCOL_BIT[facts.protocol],
      address: facts.address === undefined ? undefined : parseAddress(facts.address),
      port: facts.port,
      domain,
      parents,
      processName: fold(facts.process?.name),
      processPath: fold(facts.process?.path),
    };
  }
}
