// Upstream proxies named by URL:
//
//   socks5://[user:password@]host[:port]   SOCKS5; destination names resolved here, sent as IPs
//   socks5h://[user:password@]host[:port]  SOCKS5; destination names sent to the upstream to resolve
//   http://[user:password@]host[:port]     HTTP CONNECT, Basic auth
//
// Ports default to 1080 (SOCKS) and 80 (http, as URLs have it). User name and
// password are percent-decoded. So that a password need not sit on a command
// line, `?password_env=NAME` (or the option `passwordEnv: 'NAME'`) takes it
// from the environment variable NAME: `socks5://alice@proxy:1080?password_env=PROXY_PASS`.
// An Upstream prints (toString, JSON, util.inspect) without its credentials.
import net from 'node:net';
import { inspect } from 'node:util';
import { invalidArgType } from '../errors';
import { UpstreamError, printable } from './errors';

export type UpstreamProtocol = 'socks5' | 'socks5h' | 'http';

export interface UpstreamInit {
  protocol: UpstreamProtocol;
  host: string;
  port?: number | undefined;
  username?: string | undefined;
  password?: string | undefined;
  /** The environment variable that holds the password (instead of `password`). */
  passwordEnv?: string | undefined;
}

export interface ParseUpstreamOptions {
  /** The environment variable that holds the password, when the URL has a user name and no password. */
  passwordEnv?: string | undefined;
  /** Where `passwordEnv` is looked up. Default `process.env`. */
  env?: NodeJS.ProcessEnv | undefined;
}

const DEFAULT_PORTS: Record<UpstreamProtocol, number> = { socks5: 1080, socks5h: 1080, http: 80 };
const HOST_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?$/;

/** Whether `text` is a host name this package dials (letters, digits, '_', '-' and dots; at most 253 characters). */
export function isHostName(text: string): boolean {
  return HOST_NAME.test(text);
}
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const MAX_URL_LENGTH = 4096;
const USAGE = 'expected socks5://[user:password@]host[:port], socks5h://... or http://...';

function invalid(what: string): UpstreamError {
  return new UpstreamError(`Invalid upstream proxy: ${what}`, { code: 'ERR_UPSTREAM_URL_INVALID' });
}

/** A parsed upstream proxy. Its credentials never appear when it is printed. */
export class Upstream {
  readonly protocol: UpstreamProtocol;
  /** A name, an IPv4 address or an IPv6 address (without brackets). */
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly #password: string | undefined;

  constructor(init: { protocol: UpstreamProtocol; host: string; port: number; username?: string | undefined; password?: string | undefined }) {
    this.protocol = init.protocol;
    this.host = init.host;
    this.port = init.port;
    this.username = init.username;
    this.#password = init.password;
  }

  /** Not an own property, so that it is not printed, spread or serialized by accident. */
  get password(): string | undefined {
    return this.#password;
  }

  /** `socks5://host:port`, no credentials: for logs and messages. */
  get display(): string {
    const host = net.isIPv6(this.host) ? `[${this.host}]` : this.host;
    return `${this.protocol}://${host}:${this.port}`;
  }

  toString(): string {
    return this.display;
  }

  toJSON(): string {
    return this.display;
  }

  [inspect.custom](): string {
    return `Upstream <${this.display}${this.username === undefined ? '' : ' with credentials'}>`;
  }
}

function checkProtocol(protocol: unknown): UpstreamProtocol {
  if (protocol === 'socks5' || protocol === 'socks5h' || protocol === 'http') return protocol;
  if (protocol === 'https') throw invalid('https:// (TLS to the proxy) is not supported; use http://, socks5:// or socks5h://');
  if (protocol === 'socks4' || protocol === 'socks4a') throw invalid(`${protocol}:// is not supported; use socks5:// or socks5h://`);
  throw invalid(`unknown scheme ${JSON.stringify(printable(String(protocol), 20))}; ${USAGE}`);
}

function checkHost(host: unknown): string {
  if (typeof host !== 'string' || host === '') throw invalid(`no host; ${USAGE}`);
  if (net.isIPv4(host) || (net.isIPv6(host) && !host.includes('%'))) return host;
  if (!HOST_NAME.test(host)) throw invalid(`host ${JSON.stringify(printable(host))} is neither an IP address nor a host name`);
  return host;
}

function checkPort(port: unknown, protocol: UpstreamProtocol): number {
  if (port === undefined || port === '') return DEFAULT_PORTS[protocol];
  const value = typeof port === 'string' ? Number(port) : port;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw invalid(`port ${JSON.stringify(printable(String(port), 20))} is not 1 to 65535`);
  }
  return value;
}

function passwordFromEnv(name: string, env: NodeJS.ProcessEnv): string {
  if (!ENV_NAME.test(name)) throw invalid(`password_env ${JSON.stringify(printable(name, 40))} is not an environment variable name`);
  const value = env[name];
  if (value === undefined) {
    throw new UpstreamError(`The upstream proxy's password is to come from the environment variable ${name}, which is not set: set it, or give the password otherwise`, {
      code: 'ERR_UPSTREAM_PASSWORD_ENV',
    });
  }
  return value;
}

/** RFC 1929 carries each in 1 to 255 bytes; Basic auth cannot carry a ':' in the user name. */
function checkCredentials(protocol: UpstreamProtocol, username: string | undefined, password: string | undefined): void {
  if (username === undefined && password === undefined) return;
  if (username === undefined || username === '') throw invalid('a password without a user name');
  if (password === undefined) throw invalid('a user name without a password: give user:password@, or ?password_env=NAME');
  if (protocol === 'http') {
    if (username.includes(':')) throw invalid("the user name contains ':', which HTTP Basic auth cannot carry");
    return;
  }
  if (Buffer.byteLength(username) > 255) throw invalid('the user name is longer than SOCKS5 allows (255 bytes)');
  const length = Buffer.byteLength(password);
  if (length < 1 || length > 255) throw invalid('the password must be 1 to 255 bytes for SOCKS5');
}

function decoded(text: string, what: string): string | undefined {
  if (text === '') return undefined;
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalid(`the ${what} is not valid percent-encoding`);
  }
}

function fromUrl(text: string, options: ParseUpstreamOptions): Upstream {
  if (text.length > MAX_URL_LENGTH) throw invalid(`the URL is longer than ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // The text is not repeated: it may hold a password.
    throw invalid(`not a URL; ${USAGE}`);
  }
  const protocol = checkProtocol(url.protocol.slice(0, -1));
  if (url.pathname !== '' && url.pathname !== '/') throw invalid('the URL has a path; an upstream is scheme://host:port only');
  if (url.hash !== '') throw invalid('the URL has a #fragment');
  let passwordEnv = options.passwordEnv;
  for (const [key, value] of url.searchParams) {
    if (key !== 'password_env') throw invalid(`unknown URL parameter ${JSON.stringify(printable(key, 40))}; the only one is password_env`);
    if (passwordEnv !== undefined) throw invalid('password_env given twice');
    passwordEnv = value;
  }
  const host = checkHost(url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname);
  const port = checkPort(url.port, protocol);
  const username = decoded(url.username, 'user name');
  let password = decoded(url.password, 'password');
  if (passwordEnv !== undefined) {
    if (password !== undefined) throw invalid('both a password and password_env');
    if (username === undefined) throw invalid('password_env without a user name');
    password = passwordFromEnv(passwordEnv, options.env ?? process.env);
  }
  checkCredentials(protocol, username, password);
  return new Upstream({ protocol, host, port, username, password });
}

function fromObject(init: UpstreamInit, options: ParseUpstreamOptions): Upstream {
  const protocol = checkProtocol(init.protocol);
  const host = checkHost(init.host);
  const port = checkPort(init.port, protocol);
  let password = init.password;
  const passwordEnv = init.passwordEnv ?? options.passwordEnv;
  if (passwordEnv !== undefined) {
    if (password !== undefined) throw invalid('both a password and passwordEnv');
    password = passwordFromEnv(passwordEnv, options.env ?? process.env);
  }
  if (init.username !== undefined && typeof init.username !== 'string') throw invalidArgType('upstream.username', 'a string', init.username);
  if (password !== undefined && typeof password !== 'string') throw invalidArgType('upstream.password', 'a string', password);
  checkCredentials(protocol, init.username, password);
  return new Upstream({ protocol, host, port, username: init.username, password });
}

/**
 * An Upstream from a URL (see the top of this file), an UpstreamInit or an
 * Upstream (returned as it is). A bad one throws UpstreamError
 * `ERR_UPSTREAM_URL_INVALID` saying what is wrong, never repeating a password.
 */
export function parseUpstream(upstream: string | UpstreamInit | Upstream, options: ParseUpstreamOptions = {}): Upstream {
  if (upstream instanceof Upstream) return upstream;
  if (typeof upstream === 'string') return fromUrl(upstream, options);
  if (upstream !== null && typeof upstream === 'object') return fromObject(upstream, options);
  throw invalidArgType('upstream', 'a URL string or an object', upstream);
}
