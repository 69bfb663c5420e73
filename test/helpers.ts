// Real loopback connections for the tests: a net.Server and clients.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { basename } from 'node:path';
import { binding, type NativeBinding } from '../dist/native';
import {
  getSocketHandle,
  queryRedirectContext,
  queryRedirectContextSync,
  queryRedirectRecords,
  queryRedirectRecordsSync,
  setRedirectRecords,
  setRedirectRecordsSync,
  type IoctlName,
} from '..';

export type Family = 'IPv4' | 'IPv6';
export const LOOPBACK: Record<Family, string> = { IPv4: '127.0.0.1', IPv6: '::1' };

export interface Pair {
  accepted: net.Socket;
  client: net.Socket;
}

/** A listening server whose accepted sockets arrive in order through `next()`. */
export class Loopback {
  private readonly waiting: Array<(socket: net.Socket) => void> = [];
  private readonly arrived: net.Socket[] = [];
  readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly server: net.Server,
    readonly family: Family,
  ) {
    server.on('connection', (socket) => this.track(socket));
  }

  /** Handlers run inside 'connection', before anything else is done on the loop. */
  onConnection(handler: (socket: net.Socket) => void): void {
    this.server.prependListener('connection', handler);
  }

  static async listen(family: Family): Promise<Loopback> {
    // Half-close allowed, so each side can finish sending while still receiving.
    const server = net.createServer({ allowHalfOpen: true });
    const loopback = new Loopback(server, family);
    server.listen(0, LOOPBACK[family]);
    await once(server, 'listening');
    return loopback;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  private track(socket: net.Socket): void {
    socket.on('error', () => {});
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    const waiter = this.waiting.shift();
    if (waiter) waiter(socket);
    else this.arrived.push(socket);
  }

  private nextAccepted(): Promise<net.Socket> {
    const ready = this.arrived.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Opens one connection and returns both of its ends once both are usable. */
  async pair(): Promise<Pair> {
    const client = net.connect({ port: this.port, host: LOOPBACK[this.family] });
    client.on('error', () => {});
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    const [accepted] = await Promise.all([this.nextAccepted(), once(client, 'connect')]);
    return { accepted, client };
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Whether IPv6 loopback works here. */
async function ipv6Available(): Promise<boolean> {
  const server = net.createServer();
  try {
    server.listen(0, '::1');
    await once(server, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    server.close();
  }
}

/**
 * For a suite's before(): a server on the family's loopback, or, where IPv6
 * loopback is missing, the suite skipped with a notice naming what did not run.
 */
export async function listenOrSkip(context: Mocha.Context, family: Family, tests: string): Promise<Loopback> {
  if (family === 'IPv6' && !(await ipv6Available())) {
    console.warn(`    !!! IPv6 loopback is not available on this machine: the IPv6 ${tests} tests are NOT run`);
    context.skip();
  }
  return Loopback.listen(family);
}

/** What Node itself says the socket's fd is (`_handle.fd`: -1 on Windows, where it cannot tell). */
export function nodeFd(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

/** Expects `promise` to reject, and returns the reason. */
export async function rejection(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** Expects `fn` to throw, and returns what it threw. */
export function thrown(fn: () => unknown): any {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw, but the call returned');
}

export const isWindows = process.platform === 'win32';
/** The image name of the runtime running the tests, lower case: node.exe, or a renamed copy's name (wfp-host-app.exe). */
export const OWN_IMAGE = basename(process.execPath).toLowerCase();

/** mulberry32: a small seeded PRNG, so fuzz inputs are the same on every machine. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RECORDS = Buffer.from('opaque redirect records');

/** Each IOCTL function in both forms, on the sockets of a pair (queries on the accepted end, sets on the client). */
export const IOCTL_CALLS: ReadonlyArray<{
  label: string;
  ioctl: IoctlName;
  async: (pair: Pair) => Promise<unknown>;
  sync: (pair: Pair) => unknown;
}> = [
  {
    label: 'SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS',
    ioctl: 'SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS',
    async: (p) => queryRedirectRecords(p.accepted),
    sync: (p) => queryRedirectRecordsSync(p.accepted),
  },
  {
    label: 'SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT',
    ioctl: 'SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT',
    async: (p) => queryRedirectContext(p.accepted),
    sync: (p) => queryRedirectContextSync(p.accepted),
  },
  {
    label: 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS on a raw OS socket',
    ioctl: 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS',
    async: (p) => setRedirectRecords(getSocketHandle(p.client), RECORDS),
    sync: (p) => setRedirectRecordsSync(getSocketHandle(p.client), RECORDS),
  },
];

/** What an IOCTL call fails with, in the given form. */
export async function failureOfCall(call: (typeof IOCTL_CALLS)[number], form: 'async' | 'sync', pair: Pair): Promise<any> {
  return form === 'async' ? rejection(call.async(pair)) : thrown(() => call.sync(pair));
}

type BindingFunction = { [K in keyof NativeBinding]-?: NonNullable<NativeBinding[K]> extends (...args: any[]) => any ? K : never }[keyof NativeBinding];
export interface Spied {
  calls: Array<{ args: any[]; result?: unknown }>;
  restore(): void;
}

/**
 * Records the calls of one binding function until restore(). `around`, if
 * given, runs instead, with the original function as its first argument.
 */
export function spy(name: BindingFunction, around?: (original: (...args: any[]) => unknown, ...args: any[]) => unknown): Spied {
  const original = (binding[name] as (...args: any[]) => unknown).bind(binding);
  const spied: Spied = { calls: [], restore: () => ((binding as any)[name] = original) };
  (binding as any)[name] = (...args: any[]) => {
    const call: { args: any[]; result?: unknown } = { args };
    spied.calls.push(call);
    call.result = around ? around(original, ...args) : original(...args);
    return call.result;
  };
  return spied;
}

/**
 * Creates the network namespace `name` (Linux, root, iproute2 and `tools`);
 * returns why it cannot, or undefined once it exists. The caller deletes it.
 */
export function addNetworkNamespace(name: string, tools: string[] = []): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of ['ip', ...tools]) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).error) return `${tool} is not installed (apt-get install iproute2 iptables)`;
  }
  const made = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (made.status !== 0) return `cannot create a network namespace: ${made.stderr.trim()}`;
  return undefined;
}

/**
 * For a spec whose subject does not depend on Node's line (a C++ program of its
 * own under a sanitizer, the TypeScript compiler, the test runner): it runs in
 * one Linux line only, the one scripts/test-linux.js does not mark with
 * WFP_REDIRECT_LINE_INDEPENDENT=elsewhere; the others skip it and say so.
 */
export function runsInOneLineOnly(ctx: Mocha.Context, what: string): void {
  const elsewhere = process.env.WFP_REDIRECT_LINE_INDEPENDENT;
  if (elsewhere === undefined || !elsewhere.startsWith('elsewhere')) return;
  console.warn(`    !!! ${what} does not depend on Node's line: NOT run in Node ${process.versions.node}; ${elsewhere.slice('elsewhere'.length).trim() || 'another line runs it'}`);
  ctx.skip();
}

/** Waits (polling every 5 ms) until `done()` holds; fails naming `what` after `ms`. */
export async function until(done: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Everything a socket receives until its end, as bytes. */
export function receivedBytes(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

/** Everything a socket receives until its end, as one string. */
export async function received(socket: net.Socket): Promise<string> {
  return (await receivedBytes(socket)).toString();
}

/**
 * A free port outside the ephemeral range (Linux's, under Wine too: 32768-60999).
 * A closed port inside it can be the very port the proxy's outbound socket is
 * given: connecting 127.0.0.1:X from 127.0.0.1:X is a TCP self-connect, which
 * echoes what it is sent (one of 400 "refused" connections got data back so).
 */
export async function closedPortBelowEphemeral(): Promise<number> {
  for (let port = 20_000 + Math.floor(Math.random() * 10_000), tries = 0; tries < 100; port = 20_000 + ((port - 20_000 + 7) % 10_000), tries++) {
    const server = net.createServer();
    const bound = await new Promise<boolean>((resolve) => server.once('error', () => resolve(false)).listen(port, '127.0.0.1', () => resolve(true)));
    if (bound) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return port;
    }
  }
  throw new Error('no free port from 20000 to 29999');
}

/** A TCP port free on `host` now (a server listened on port 0 there, then closed). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer().listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
