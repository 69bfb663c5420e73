// SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), as
// handshake steps (exchange.ts). Every field is checked before it is used,
// and nothing is read beyond what the reply's own lengths say.
import net from 'node:net';
import { encodeSockaddr } from '../sockaddr';
import { UpstreamError, type UpstreamErrorCode } from './errors';
import type { Need, Steps } from './exchange';
import type { Upstream } from './url';

export const SOCKS_VERSION = 5;
export const COMMAND_CONNECT = 1;
export const COMMAND_UDP_ASSOCIATE = 3;
const METHOD_NONE = 0x00;
const METHOD_PASSWORD = 0x02;
const METHOD_NONE_ACCEPTABLE = 0xff;
const AUTH_VERSION = 1;
export const ATYP_IPV4 = 1;
export const ATYP_DOMAIN = 3;
export const ATYP_IPV6 = 4;

/** RFC 1928 section 6, X'01' to X'08'. */
const REPLY_CODES: Record<number, [UpstreamErrorCode, string]> = {
  1: ['ERR_SOCKS_GENERAL_FAILURE', 'general SOCKS server failure'],
  2: ['ERR_SOCKS_NOT_ALLOWED', 'connection not allowed by ruleset'],
  3: ['ERR_SOCKS_NETWORK_UNREACHABLE', 'network unreachable'],
  4: ['ERR_SOCKS_HOST_UNREACHABLE', 'host unreachable'],
  5: ['ERR_SOCKS_CONNECTION_REFUSED', 'connection refused'],
  6: ['ERR_SOCKS_TTL_EXPIRED', 'TTL expired'],
  7: ['ERR_SOCKS_COMMAND_NOT_SUPPORTED', 'command not supported'],
  8: ['ERR_SOCKS_ADDRESS_TYPE_NOT_SUPPORTED', 'address type not supported'],
};

export interface SocksAddress {
  /** An IPv4 or IPv6 address, or a name (ATYP X'03'). */
  host: string;
  port: number;
}

export function malformed(upstream: Upstream, what: string): UpstreamError {
  return new UpstreamError(`The SOCKS5 upstream ${upstream.display} gave a malformed answer: ${what}`, { code: 'ERR_SOCKS_MALFORMED_REPLY' });
}

function replyError(upstream: Upstream, reply: number, command: number): UpstreamError {
  const known = REPLY_CODES[reply];
  const what = command === COMMAND_UDP_ASSOCIATE ? 'UDP ASSOCIATE' : 'CONNECT';
  if (known === undefined) {
    return new UpstreamError(`The SOCKS5 upstream ${upstream.display} refused ${what} with reply code ${reply}, which RFC 1928 leaves unassigned`, {
      code: 'ERR_SOCKS_UNASSIGNED_REPLY',
      reply,
    });
  }
  return new UpstreamError(`The SOCKS5 upstream ${upstream.display} refused ${what}: ${known[1]} (reply ${reply})`, { code: known[0], reply });
}

/** ATYP, address and port of `host` (an IP address, or a name of at most 255 bytes already checked). */
export function encodeAddress(host: string, port: number): Buffer {
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port, 0);
  const family = net.isIP(host);
  // encodeSockaddr lays the address out at offset 4 (IPv4) or 8 (IPv6).
  if (family === 4) return Buffer.concat([Buffer.from([ATYP_IPV4]), encodeSockaddr({ address: host, port: 0 }).subarray(4, 8), portBytes]);
  if (family === 6) return Buffer.concat([Buffer.from([ATYP_IPV6]), encodeSockaddr({ address: host, port: 0 }).subarray(8, 24), portBytes]);
  const name = Buffer.from(host);
  return Buffer.concat([Buffer.from([ATYP_DOMAIN, name.length]), name, portBytes]);
}

/** Text of 16 bytes of an IPv6 address (uncompressed: net accepts it as it is). */
export function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** Reads ATYP, address and port: the reply's BND fields. */
function* readAddress(upstream: Upstream): Generator<Need, SocksAddress, Buffer> {
  const [type] = yield 1;
  let host: string;
  if (type === ATYP_IPV4) host = [...(yield 4)].join('.');
  else if (type === ATYP_IPV6) host = ipv6Text(yield 16);
  else if (type === ATYP_DOMAIN) host = (yield (yield 1)[0]).toString('latin1');
  else throw malformed(upstream, `address type ${type} is none of 1 (IPv4), 3 (name), 4 (IPv6)`);
  const port = (yield 2).readUInt16BE(0);
  return { host, port };
}

/** Method negotiation, and RFC 1929 authentication when the upstream picks it. */
function* negotiate(write: (bytes: Buffer) => void, upstream: Upstream): Steps<void> {
  const password = upstream.password;
  const offered = password === undefined ? [METHOD_NONE] : [METHOD_NONE, METHOD_PASSWORD];
  write(Buffer.from([SOCKS_VERSION, offered.length, ...offered]));
  const [version, method] = yield 2;
  if (version !== SOCKS_VERSION) throw malformed(upstream, `version ${version} in its method choice, not 5 (is it a SOCKS5 server?)`);
  if (method === METHOD_NONE_ACCEPTABLE) {
    const hint = password === undefined ? 'it may want a user name and password: give user:password@ in the URL' : 'it accepts neither no authentication nor a user name and password';
    throw new UpstreamError(`The SOCKS5 upstream ${upstream.display} accepts none of the offered methods: ${hint}`, { code: 'ERR_SOCKS_NO_ACCEPTABLE_METHODS' });
  }
  if (!offered.includes(method)) throw malformed(upstream, `it chose method ${method}, which was not offered`);
  if (method !== METHOD_PASSWORD) return;

  const user = Buffer.from(upstream.username ?? '');
  const pass = Buffer.from(password ?? '');
  write(Buffer.concat([Buffer.from([AUTH_VERSION, user.length]), user, Buffer.from([pass.length]), pass]));
  const [authVersion, status] = yield 2;
  if (authVersion !== AUTH_VERSION) throw malformed(upstream, `version ${authVersion} in its authentication answer, not 1`);
  if (status !== 0) {
    // Neither the user name nor the password is named: the message may be logged.
    throw new UpstreamError(`The SOCKS5 upstream ${upstream.display} refused the user name and password (status ${status}): check them`, { code: 'ERR_SOCKS_AUTH_FAILED' });
  }
}

/**
 * The whole SOCKS5 handshake for `command` to `target`: resolves to the
 * reply's bound address (for CONNECT, the upstream's outbound end; for UDP
 * ASSOCIATE, the relay).
 */
export function* socks5Handshake(write: (bytes: Buffer) => void, upstream: Upstream, command: number, target: SocksAddress): Steps<SocksAddress> {
  yield* negotiate(write, upstream);
  write(Buffer.concat([Buffer.from([SOCKS_VERSION, command, 0]), encodeAddress(target.host, target.port)]));
  const [version, reply] = yield 2;
  if (version !== SOCKS_VERSION) throw malformed(upstream, `version ${version} in its reply, not 5`);
  // The code is known after two bytes: a server that closes after them still gets its refusal named.
  if (reply !== 0) throw replyError(upstream, reply, command);
  yield 1; // RSV
  return yield* readAddress(upstream);
}

/** A destination as a SOCKS5 ATYP can carry it, or the reason it cannot. */
export function socksTargetProblem(host: string): string | undefined {
  if (net.isIP(host) !== 0) return host.includes('%') ? 'a scoped IPv6 address (with %zone) cannot be sent through a proxy' : undefined;
  if (Buffer.byteLength(host) > 255) return 'a host name longer than 255 bytes';
  return undefined;
}
