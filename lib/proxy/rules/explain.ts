// --explain "tcp example.com:443 process=curl": a connection described in
// one line, and which rule would decide it, without starting anything.
import net from 'node:net';
import type { MatchFacts, Verdict } from './matcher';

/** A query that cannot be read: exit code 2. */
export class ExplainQueryError extends Error {
  readonly code = 'ERR_PROXY_EXPLAIN_QUERY';
}

const USAGE = 'wants "[tcp|udp] HOST:PORT [process=NAME|PATH] [pid=N] [domain=NAME]" (HOST an IP address or a domain name; IPv6 as [::1]:443)';

/** The facts a query describes: HOST a name gives the domain (and no address), an IP address the address. */
export function parseExplainQuery(query: string): MatchFacts {
  const words = query.trim().split(/\s+/).filter(Boolean);
  const facts: MatchFacts = { protocol: 'tcp', address: undefined, port: 0, domain: undefined };
  if (words[0] === 'tcp' || words[0] === 'udp') facts.protocol = words.shift() as 'tcp' | 'udp';
  const target = words.shift();
  const match = target === undefined ? null : (/^\[([^\]]+)\]:(\d{1,5})$/.exec(target) ?? /^([^:[\]]+):(\d{1,5})$/.exec(target));
  if (!match || Number(match[2]) > 65535) throw new ExplainQueryError(`--explain: "${target ?? ''}" is not HOST:PORT; --explain ${USAGE}`);
  facts.port = Number(match[2]);
  if (net.isIP(match[1])) facts.address = match[1];
  else facts.domain = match[1].toLowerCase();
  let pid = 0;
  let processText: string | undefined;
  for (const word of words) {
    const [key, value] = [word.slice(0, word.indexOf('=')), word.slice(word.indexOf('=') + 1)];
    if (key === 'process' && value) processText = value;
    else if (key === 'domain' && value) facts.domain = value.toLowerCase();
    else if (key === 'pid' && /^\d+$/.test(value)) pid = Number(value);
    else throw new ExplainQueryError(`--explain: "${word}" is not understood; --explain ${USAGE}`);
  }
  if (processText !== undefined) {
    const isPath = processText.includes('/') || processText.includes('\\');
    facts.process = { pid, name: isPath ? processText.split(/[\\/]/).pop()! : processText, path: isPath ? processText : undefined };
  }
  return facts;
}

/** One line: the rule that decides and what it does. */
export function describeVerdict(verdict: Verdict): string {
  const { action, rule } = verdict;
  const what = action.kind === 'via' ? `via ${action.name} (${action.upstream.display})` : action.kind;
  const where = rule === undefined ? 'default' : rule.label === rule.path ? rule.path : `${rule.path} "${rule.label}"`;
  return `${where}: ${what}`;
}
