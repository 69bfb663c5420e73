// The host an HTTP/1.0 or 1.1 request is for (RFC 9112), from the request's
// first bytes: the request line, then header lines up to a bound, the Host
// field or an absolute-form / CONNECT target. Strict where leniency lets one
// request be read two ways (obs-fold, spaces before a colon, bare CR, two Hosts).
import { isIPv4, isIPv6 } from 'node:net';
import { checkHostName } from './hostname';
import { requireBytes } from './reader';
import type { HttpHostFound, HttpHostResult, HttpNoneReason, None } from './result';

/** The most bytes of request line and header fields read before giving up on the end of the head. */
export const MAX_HTTP_HEAD_BYTES = 8 * 1024;

const TCHAR = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]";
const METHOD_PREFIX = new RegExp(`^${TCHAR}{0,32}$`);
const REQUEST_LINE = new RegExp(`^(${TCHAR}{1,32}) ([\\x21-\\x7e]+) HTTP/1\\.([01])$`);
const TARGET_PREFIX = /^[\x21-\x7e]*$/;
const FIELD_NAME = new RegExp(`^${TCHAR}+$`);
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const ABSOLUTE_FORM = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/;
const PORT = /^[0-9]{0,5}$/;
const HTTP2_PREFACE = 'PRI * HTTP/2.0';

const none = (reason: HttpNoneReason): None<HttpNoneReason> => ({ kind: 'none', reason });

/** The host in the first bytes of an HTTP/1.x request. */
export function sniffHttpHost(bytes: Uint8Array): HttpHostResult {
  requireBytes(bytes, 'bytes');
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, MAX_HTTP_HEAD_BYTES)).toString('latin1');
  const lines = head.split('\n');
  // The last piece has no LF yet: a partial line, unless the head ended before it.
  const partial = lines.pop()!;
  if (lines.length === 0) return requestLinePrefixOk(partial) ? needMoreOrTooLong(bytes) : notHttp(partial);
  const requestLine = REQUEST_LINE.exec(stripCr(lines[0]!));
  if (requestLine === null) return notHttp(lines[0]!);
  const hosts: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = stripCr(lines[i]!);
    if (line === '') return hostOf(requestLine[1]!, requestLine[2]!, requestLine[3] === '0' ? '1.0' : '1.1', hosts);
    const colon = line.indexOf(':');
    const name = line.slice(0, Math.max(colon, 0));
    const value = line.slice(colon + 1);
    // No name: obs-fold or a stray line. A space before the colon, or a control byte: refused.
    if (!FIELD_NAME.test(name) || !FIELD_VALUE.test(value)) return none('malformed');
    if (name.toLowerCase() === 'host') hosts.push(trimOws(value));
  }
  if (!FIELD_VALUE.test(stripCr(partial))) return none('malformed');
  return needMoreOrTooLong(bytes);
}

function needMoreOrTooLong(bytes: Uint8Array): HttpHostResult {
  return bytes.length >= MAX_HTTP_HEAD_BYTES ? none('head-too-long') : { kind: 'need-more' };
}

function notHttp(line: string): HttpHostResult {
  return none(line.startsWith(HTTP2_PREFACE.slice(0, Math.max(line.length, 'PRI * HTTP/2'.length))) ? 'http2-preface' : 'not-http');
}

/** The value without optional whitespace at either end; a loop, as /[ \t]+$/ backtracks quadratically. */
function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return value.slice(start, end);
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** Whether `text` (no LF yet) can still become a request line: method SP target SP HTTP/1.x CR. */
function requestLinePrefixOk(text: string): boolean {
  const [method, target, version, ...more] = text.split(' ');
  if (!METHOD_PREFIX.test(method!)) return false;
  if (target === undefined) return true;
  if (method === '' || !TARGET_PREFIX.test(target)) return false;
  if (version === undefined) return true;
  return target !== '' && more.length === 0 && ('HTTP/1.1\r'.startsWith(version) || 'HTTP/1.0\r'.startsWith(version));
}

/** The host of a complete head: the target's authority when it has one, else the one Host field. */
function hostOf(method: string, target: string, version: '1.0' | '1.1', hosts: string[]): HttpHostResult {
  if (hosts.length > 1) return none('duplicate-host');
  const absolute = ABSOLUTE_FORM.exec(target);
  // CONNECT's target is the authority itself (RFC 9112 3.2.3).
  const fromTarget = method === 'CONNECT' ? target : absolute?.[1];
  const authority = fromTarget ?? hosts[0];
  if (authority === undefined || authority === '') return none('no-host');
  const parsed = parseAuthority(authority);
  if (parsed === undefined) return none('bad-name');
  return { kind: 'found', protocol: 'http', ...parsed, from: fromTarget === undefined ? 'host-header' : 'request-target', method, version };
}

/** host[:port], the host a name, a dotted quad or a bracketed IPv6 address; userinfo is refused (RFC 9110 4.2.4). */
function parseAuthority(authority: string): Pick<HttpHostFound, 'name' | 'hostKind' | 'port'> | undefined {
  let host: string;
  let rest: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) return undefined;
    host = authority.slice(1, close);
    rest = authority.slice(close + 1);
    if (!isIPv6(host) || host.includes('%')) return undefined;
  } else {
    const colon = authority.indexOf(':');
    host = colon < 0 ? authority : authority.slice(0, colon);
    rest = colon < 0 ? '' : authority.slice(colon);
  }
  if (rest !== '' && !(rest.startsWith(':') && PORT.test(rest.slice(1)))) return undefined;
  const port = rest.length > 1 ? Number(rest.slice(1)) : undefined;
  if (port !== undefined && port > 65535) return undefined;
  if (authority.startsWith('[')) return { name: host.toLowerCase(), hostKind: 'ipv6', port };
  if (isIPv4(host)) return { name: host, hostKind: 'ipv4', port };
  const checked = checkHostName(host, true);
  return checked.ok ? { name: checked.name, hostKind: 'dns', port } : undefined;
}
