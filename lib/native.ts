// The typed loader of wfp_redirect.node: what the binding exports, exactly.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { WfpRedirectError } from './errors';

/**
 * The end of a relayConnect connection: the client's endpoint is undefined
 * when it had gone before the relay saw it, the destination's when it was
 * never known (ERR_NOT_REDIRECTED); `code` undefined for an orderly end.
 */
export type NativeConnectionDone = (
  logId: number,
  bytesUp: number,
  bytesDown: number,
  durationMs: number,
  code: string | undefined,
  clientAddress: string | undefined,
  clientPort: number | undefined,
  destinationAddress: string | undefined,
  destinationPort: number | undefined,
) => void;

export interface NativeBinding {
  /** The OS socket whose local and peer endpoints are these; throws ERR_WFP_SOCKET_NOT_FOUND. */
  getSocketHandle(localAddress: string, localPort: number, remoteAddress: string, remotePort: number): number;
  queryRedirectRecords(osSocket: number): Buffer;
  queryRedirectContext(osSocket: number): Buffer;
  setRedirectRecords(osSocket: number, records: Uint8Array): void;
  /** Throws what setRedirectRecords would for these records (type and size), without a socket. */
  checkRecords(records: Uint8Array): void;
  /** An unconnected TCP socket (overlapped on Windows), for connectRedirected. */
  createTcpSocket(family: 4 | 6): number;
  /** SO_MARK on an OS socket (Linux; needs CAP_NET_ADMIN). */
  setSocketMark(osSocket: number, mark: number): void;
  /** Whether this build can mark sockets (Linux builds). */
  readonly hasSocketMark: boolean;
  /** Closes a socket createTcpSocket made that libuv never adopted. */
  closeSocket(osSocket: number): void;
  /** Netfilter's destination before NAT (Linux); null where it keeps no record. */
  originalDestination(osSocket: number): { address: string; port: number } | null;
  /** Linux: the socket of an exact 4-tuple, by sock_diag (UDP: the one a datagram from remote to local reaches); null when there is none. */
  socketIdentity(udp: boolean, localAddress: string, localPort: number, remoteAddress: string, remotePort: number): { inode: number; uid: number } | null;
  /** Linux: whether descriptor `fd` of process `pid` is socket `inode`. */
  holdsSocket(pid: number, fd: number, inode: number): boolean;
  /** Linux: a process holding socket `inode` (pid 0: none found), reading at most `budget` descriptors, on the threadpool. */
  findSocketHolder(inode: number, uid: number, preferred: number[], budget: number): Promise<{ pid: number; fd: number; examined: number; exhausted: boolean }>;
  /** Windows: the owner-pid table rows (TCP connections or UDP sockets) of a family on a local port. */
  ownerPidRows(udp: boolean, family: 4 | 6, localPort: number): Array<{ localAddress: string; localPort: number; remoteAddress?: string; remotePort?: number; pid: number }>;
  /** Windows: a process's image path (QueryFullProcessImageNameW); null when it cannot be opened. */
  processImagePath(pid: number): string | null;
  /** Whether this build has sock_diag (Linux builds). */
  readonly hasSocketDiag: boolean;
  /** Whether this build has the owner-pid tables (Windows builds). */
  readonly hasOwnerPidTables: boolean;
  /** Whether this build reads netfilter (Linux builds). */
  readonly hasNetfilter: boolean;
  /** Whether this build has the IOCTLs (Windows builds). */
  readonly hasRedirectIoctls: boolean;
  setErrorClass(errorClass: typeof WfpRedirectError): void;
  /** A non-blocking UDP socket on this thread's event loop that reads and sends control messages. */
  UdpSocket: new (
    family: 4 | 6,
    transparent: boolean,
    onMessage: UdpMessageCallback,
    /** `closed`: the socket gave up after repeated poll failures and is closed. */
    onError: (error: Error, closed: boolean) => void,
    /** A queued datagram (send() returned false) went, or failed. */
    onSent: (ticket: number, error?: Error) => void,
  ) => NativeUdpSocket;
  /** Throws what a UdpSocket's send() would for these records (type and size), worded for a datagram. */
  checkDatagramRecords(records: Uint8Array): void;
  /** Whether this build sends redirect records with a datagram (Windows builds). */
  readonly udpSendsRecords: boolean;
  /** Whether this build has TPROXY for UDP (Linux builds). */
  readonly udpHasTproxy: boolean;
  readonly SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS: number;
  readonly SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT: number;
  readonly SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS: number;
  readonly MAX_BLOB_SIZE: number;
  /**
   * Linux and Windows builds: relays two connected TCP sockets (Node's
   * descriptors, or SOCKETs on Windows; the relay works on duplicates)
   * natively on this thread's loop; `up` goes to B first, `down` to A.
   * `onDone` once, from the loop. Returns the relay's id.
   */
  relayStart?(
    socketA: number,
    socketB: number,
    idleMs: number,
    halfCloseMs: number,
    up: Uint8Array | undefined,
    down: Uint8Array | undefined,
    onDone: (bytesUp: number, bytesDown: number, code: string | undefined) => void,
  ): number;
  /**
   * Linux builds: what relayConnect does for one listener's connections:
   * connect each to `targetHost` (an IP address) and `targetPort`, or with
   * null to the accepted socket's netfilter original destination; SO_MARK
   * `mark` first, unless -1. `onDone` once per connection, from the loop.
   * Returns the group's id.
   */
  relayGroup?(
    listenHost: string,
    listenPort: number,
    targetHost: string | null,
    targetPort: number,
    mark: number,
    connectMs: number,
    idleMs: number,
    halfCloseMs: number,
    onDone: NativeConnectionDone,
  ): number;
  /**
   * Decides, connects and relays the accepted socket `fd` (the relay works on
   * a duplicate) as its group says, natively; `logId` comes back in onDone.
   * Returns the relay's id.
   */
  relayConnect?(fd: number, group: number, logId: number): number;
  /**
   * Linux builds: the group accepts from a duplicate of the listening socket
   * `fd` itself from now on (close your own handle of it), each connection
   * relayed as relayConnect would with logId 0, no JavaScript before its
   * onDone; one past `maxConnections` open is closed at once. `onRefused`,
   * from the loop: `count` connections closed so (ERR_MAX_CONNECTIONS, once
   * per wake-up; EMFILE: out of descriptors, those waiting accepted and
   * closed, as Node's server does), or an accept's failure it cannot get past
   * (accepting rests a while, the connection waiting in the kernel's queue).
   */
  relayGroupListen?(group: number, fd: number, maxConnections: number, onRefused: (code: string, count: number) => void): boolean;
  /** How many relays of the group are open (0 for a group that is gone). */
  relayGroupSize?(group: number): number;
  /**
   * Ends a group's open relays, each still reporting: without an error, or
   * with `cut` ERR_PROXY_SHUTDOWN. Answers how many it ended (one that had
   * ended by itself, its report still to come, keeps its end and is not counted).
   */
  relayGroupDestroy?(group: number, cut?: boolean): number;
  /** No more relayConnect for the group, its listener closed; it goes once its relays have ended. */
  relayGroupClose?(group: number): boolean;
  /** Ends a relay without an error (its onDone still comes); false when it has ended. */
  relayDestroy?(id: number): boolean;
  /** Which build produced the binary: 'node-gyp', 'cmake-js' or 'mingw'. */
  readonly build: string;
}

/** One received datagram: its bytes, its sender, and the redirect data that came with it. */
export type UdpMessageCallback = (
  data: Buffer,
  address: string,
  port: number,
  records: Buffer | undefined,
  context: Buffer | undefined,
  destinationAddress: string | undefined,
  destinationPort: number | undefined,
) => void;

export interface NativeUdpSocket {
  /** Binds and starts receiving. */
  bind(address: string, port: number): void;
  address(): { address: string; port: number; family: 'IPv4' | 'IPv6' };
  /** true: sent; false: queued until the socket polls writable, answered by onSent(ticket). */
  send(data: Uint8Array, address: string, port: number, records: Uint8Array | undefined, fromAddress: string | undefined, fromPort: number | undefined, ticket: number): boolean;
  close(): void;
  /** SO_MARK on the socket (Linux). */
  setMark(mark: number): void;
  ref(): void;
  unref(): void;
  stats(): { received: number; truncated: number; malformedControl: number; sendsQueued: number; sendQueueFull: number };
}

const packageRoot = join(__dirname, '..');

const FIX =
  'Use a package with a prebuilt addon for this platform (linux-x64, linux-arm64, win32-x64), ' +
  'or build one with `npm rebuild wfp-redirect --foreground-scripts` (needs Python and a C++ compiler), ' +
  'or set WFP_REDIRECT_ADDON to a wfp_redirect.node built for this platform.';

/** What the addon must fit: the platform, the architecture and this runtime's Node-API version. */
function target(): string {
  return `${process.platform}-${process.arch} (Node-API ${process.versions.napi ?? 'unknown'})`;
}

function addonError(code: 'ERR_WFP_ADDON_NOT_FOUND' | 'ERR_WFP_ADDON_LOAD_FAILED', message: string, cause?: unknown): Error {
  return Object.assign(new Error(`wfp-redirect: ${message}. ${FIX}`, cause === undefined ? undefined : { cause }), { code });
}

/** Loads an addon file that exists; the OS's refusal becomes ERR_WFP_ADDON_LOAD_FAILED with its reason. */
function open(file: string): NativeBinding {
  try {
    // process.dlopen rather than require: it also works in a single-executable app.
    const module = { exports: {} as NativeBinding };
    process.dlopen(module, file);
    return module.exports;
  } catch (cause) {
    const reason = (cause instanceof Error ? cause.message.split('\n')[0] : String(cause)).replace(/\.$/, '');
    throw addonError('ERR_WFP_ADDON_LOAD_FAILED', `the native addon ${file} did not load for ${target()}: ${reason}`, cause);
  }
}

/** The asset name of the addon in a single-executable app (scripts/build-sea.js). */
export const SEA_ADDON_ASSET = 'wfp_redirect.node';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * In a single-executable app the addon is an asset, which the OS can only
 * load from a file: it is written once to a cache folder under a name made
 * from its content (WFP_REDIRECT_SEA_CACHE, else %LOCALAPPDATA%\wfp-redirect),
 * checked against the asset on every start, and rewritten when it differs
 * (tampered with, or cut short). Undefined outside a single-executable app.
 */
function seaAddonFile(): string | undefined {
  let sea: { isSea(): boolean; getRawAsset(name: string): ArrayBuffer } | undefined;
  try {
    sea = require('node:sea');
  } catch {
    return undefined; // a Node without single-executable support
  }
  if (!sea?.isSea()) return undefined;
  const bytes = new Uint8Array(sea.getRawAsset(SEA_ADDON_ASSET));
  const digest = sha256(bytes);
  const dir = process.env.WFP_REDIRECT_SEA_CACHE ?? join(process.env.LOCALAPPDATA ?? tmpdir(), 'wfp-redirect');
  const file = join(dir, `wfp_redirect-${digest.slice(0, 16)}.node`);
  if (existsSync(file) && sha256(readFileSync(file)) === digest) return file;
  mkdirSync(dir, { recursive: true });
  const fresh = `${file}.${process.pid}.tmp`;
  writeFileSync(fresh, bytes);
  try {
    renameSync(fresh, file);
    return file;
  } catch {
    return fresh; // the cached file is in use by a running copy: load this one
  }
}

/** Where a build from source puts the addon: node-gyp's Release, then Debug, folder. */
const SOURCE_BUILDS = ['Release', 'Debug'].map((type) => join(packageRoot, 'build', type, 'wfp_redirect.node'));

/**
 * The addon is looked for in WFP_REDIRECT_ADDON (a path, for testing another
 * build), then in a single-executable app's assets, then in the prebuilt
 * folder shipped for this platform (so no install script is needed where one
 * exists), then in node-gyp's build folder.
 */
function load(): NativeBinding {
  const override = process.env.WFP_REDIRECT_ADDON;
  if (override) {
    const file = resolve(override);
    if (!existsSync(file)) throw addonError('ERR_WFP_ADDON_NOT_FOUND', `WFP_REDIRECT_ADDON names ${file}, which does not exist`);
    return open(file);
  }
  const fromSea = seaAddonFile();
  if (fromSea) return open(fromSea);
  const prebuilt = join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'wfp_redirect.node');
  const [first, ...others] = [prebuilt, ...SOURCE_BUILDS].filter((file) => existsSync(file));
  // Two places named, not every path tried: this is the message a CLI user reads.
  if (!first) throw addonError('ERR_WFP_ADDON_NOT_FOUND', `no native addon for ${target()} in ${dirname(prebuilt)} or ${join(packageRoot, 'build')}`);
  try {
    return open(first);
  } catch (error) {
    // A prebuilt addon this system cannot load (musl rather than glibc): a build from source if there is one.
    if (others.length === 0) throw error;
    return open(others[0]!);
  }
}

let loaded: NativeBinding | undefined;
let failure: Error | undefined;

/**
 * The addon, loaded on first use: the parts of the package that need no
 * addon (sockaddr, errors, constants, the CLI's --help) work without one.
 * A failure is kept and thrown again, so every use reports the same cause.
 */
export function loadBinding(): NativeBinding {
  if (loaded) return loaded;
  if (failure) throw failure;
  try {
    const addon = load();
    addon.setErrorClass(WfpRedirectError);
    loaded = addon;
    return addon;
  } catch (error) {
    failure = error as Error;
    throw error;
  }
}

/** The addon's exports, loading it on the first use (see loadBinding). */
export const binding: NativeBinding = new Proxy({} as NativeBinding, {
  get: (_target, key) => Reflect.get(loadBinding(), key),
  // Tests replace a function to watch its calls: the change must reach the addon's own object.
  set: (_target, key, value) => Reflect.set(loadBinding(), key, value),
  has: (_target, key) => Reflect.has(loadBinding(), key),
  ownKeys: () => Reflect.ownKeys(loadBinding()),
  getOwnPropertyDescriptor: (_target, key) => {
    const descriptor = Reflect.getOwnPropertyDescriptor(loadBinding(), key);
    // Configurable, as a proxy may not report a fixed property its (empty) target lacks.
    return descriptor && { ...descriptor, configurable: true };
  },
});
