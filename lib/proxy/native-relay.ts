// Hands a connection whose setup is finished (both sockets connected, the
// sniffed bytes known) to the addon's native relay (native/relay/), so that
// its bytes never cross into JavaScript. The net.Sockets stay open, idle (Node
// no longer reads them, nothing is written), as the proxy's bookkeeping knows
// them: destroying either (a failure, a shutdown) ends the native relay, and
// the relay's end destroys both. Where the native relay cannot take a pair
// (another platform, a missing internal, a socket JS is still using), the
// caller relays on streams, and a proxy says why once.
import { Buffer } from 'node:buffer';
import type net from 'node:net';
import { binding } from '../native';
import { handleTakeOverMissing, resumeReading, stopReading } from '../node-internals';
import { resolveSocketHandle } from '../socket-handle';

/** How a connection's bytes move once it is set up: natively in the addon, or on JS streams. */
export type RelayEngine = 'native' | 'streams';

export interface NativeRelayEnd {
  /** Bytes the native relay wrote to the outbound socket. */
  bytesUp: number;
  /** Bytes the native relay wrote to the accepted socket. */
  bytesDown: number;
  /** The failure's code (ECONNRESET, ERR_IDLE_TIMEOUT, ...); undefined when both sides ended or it was destroyed. */
  code: string | undefined;
}

export interface NativeRelay {
  /** Settles once, after the native side has closed its duplicates of both sockets. */
  readonly ended: Promise<NativeRelayEnd>;
  /** Ends it without an error; `ended` still settles. False when it had ended already (its `ended` still to settle, with its own end). */
  destroy(): boolean;
}

export interface RelayTimeouts {
  idleTimeout: number;
  halfCloseTimeout: number;
}

/** Why this process has no native relay at all (undefined: it has one). */
export function nativeRelayUnavailable(): string | undefined {
  if (typeof binding.relayStart === 'function' && typeof binding.relayDestroy === 'function') return undefined;
  return `this ${process.platform} build has no native relay (Linux and Windows only)`;
}

/**
 * Windows: the SOCKETs of the pair, which the addon finds on this thread's
 * loop by their addresses (`_handle.fd` is -1 there); or why not. Elsewhere
 * undefined: stopReading answers the descriptors.
 */
function windowsSockets(inbound: net.Socket, out: net.Socket): [number, number] | string | undefined {
  if (process.platform !== 'win32') return undefined;
  try {
    return [resolveSocketHandle(inbound), resolveSocketHandle(out)];
  } catch (error) {
    return `the OS socket was not found (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
  }
}

/** Why this pair cannot be handed over now (undefined: it can). */
function pairRefused(inbound: net.Socket, out: net.Socket): string | undefined {
  for (const socket of [inbound, out]) {
    if (socket.destroyed || socket.connecting) return 'a socket is not open and connected';
    if (socket.writableLength > 0 || socket.writableEnded) return 'a socket still has writes pending';
    // Somebody reads it in JS (a 'data' listener): it stays on streams.
    if (socket.readableFlowing === true) return 'a socket is being read by JavaScript';
    const missing = handleTakeOverMissing(socket);
    if (missing) return `the Node internal ${missing} is not there`;
  }
  return undefined;
}

/**
 * What Node had read from a socket already. Asked for by size, until none is
 * left: read() without one may hand over only the first of several buffers
 * (Node 26, after the sniff unshifted the bytes past its bound: 48 KiB of
 * 112 KiB came, and the other 64 KiB were never relayed).
 */
function buffered(socket: net.Socket): Buffer | undefined {
  const chunks: Buffer[] = [];
  while (socket.readableLength > 0) {
    const chunk: unknown = socket.read(socket.readableLength);
    if (!Buffer.isBuffer(chunk) || chunk.length === 0) break;
    chunks.push(chunk);
  }
  return joined(...chunks);
}

function joined(...parts: (Buffer | undefined)[]): Buffer | undefined {
  const present = parts.filter((part): part is Buffer => part !== undefined && part.length > 0);
  return present.length === 0 ? undefined : present.length === 1 ? present[0] : Buffer.concat(present);
}

/**
 * Relays `inbound` <-> `out` natively, `replay` going to `out` first; or a
 * reason it cannot (then nothing was changed: the caller relays on streams).
 */
export function handOver(inbound: net.Socket, out: net.Socket, replay: Buffer | undefined, timeouts: RelayTimeouts): NativeRelay | string {
  const unavailable = nativeRelayUnavailable();
  if (unavailable) return unavailable;
  const refused = pairRefused(inbound, out);
  if (refused) return refused;
  const sockets = windowsSockets(inbound, out);
  if (typeof sockets === 'string') return sockets;
  const start = binding.relayStart!;
  const destroy = binding.relayDestroy!;

  const fromInbound = buffered(inbound);
  const fromOut = buffered(out);
  const up = joined(replay, fromInbound);
  const fdA = stopReading(inbound);
  const fdB = stopReading(out);
  let id: number;
  try {
    if (typeof fdA === 'string' || typeof fdB === 'string') throw new Error(typeof fdA === 'string' ? fdA : (fdB as string));
    const [socketA, socketB] = sockets ?? [fdA, fdB];
    let settle!: (end: NativeRelayEnd) => void;
    const ended = new Promise<NativeRelayEnd>((resolve) => (settle = resolve));
    id = start(socketA, socketB, timeouts.idleTimeout, timeouts.halfCloseTimeout, up, fromOut, (bytesUp, bytesDown, code) =>
      settle({ bytesUp, bytesDown, code }),
    );
    // Node's timers for these sockets (connect, idle, half-close) give way to
    // the relay's, once it has the pair (a refused pair keeps them); with no
    // 'timeout' listener left, one the streams relay's 'end' handler would
    // still arm (Node read a FIN before the hand-over) cuts nothing.
    for (const socket of [inbound, out]) {
      socket.setTimeout(0);
      socket.removeAllListeners('timeout');
    }
    return { ended, destroy: () => destroy(id) };
  } catch (error) {
    // Nothing was taken: put back what was read (streams replay it first), let
    // Node read again (its stream may be waiting on a read it asked for), and let the caller pipe.
    if (fromOut) out.unshift(fromOut);
    if (fromInbound) inbound.unshift(fromInbound);
    for (const [socket, fd] of [[inbound, fdA], [out, fdB]] as const) if (typeof fd === 'number') resumeReading(socket);
    return `the native relay refused the pair (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
  }
}

/**
 * For a pair piped to each other on streams: once `after` bytes have been
 * read from the two together, and at a moment when Node has nothing left to
 * write on either socket (checked at each 'data' and 'drain' from then on),
 * stops the pipes and hands the pair over (handOver), all in one tick: no
 * byte, FIN or close can come between. Resolves to the relay; to why the
 * addon refused the pair (then it is piped again, on streams to the end); or
 * to undefined when the pair stays on streams with nothing to say (a socket
 * closed or half-closed first). Never waits on anything but the pair's own events.
 */
export function handOverWhenBulky(inbound: net.Socket, out: net.Socket, after: number, timeouts: RelayTimeouts): Promise<NativeRelay | string | undefined> {
  return new Promise((resolve) => {
    let seen = 0;
    const stopWatching = () => {
      for (const socket of [inbound, out]) socket.off('data', counted).off('drain', tryNow).off('end', ended).off('close', ended);
    };
    // A half-closed pair finishes on streams (its FIN went through the pipe); a closed one is done.
    const ended = () => {
      stopWatching();
      resolve(undefined);
    };
    const tryNow = () => {
      // What Node still writes would cross the relay's bytes: wait for a moment when nothing is queued.
      if (seen < after || inbound.writableLength > 0 || out.writableLength > 0) return;
      stopWatching();
      inbound.unpipe(out);
      out.unpipe(inbound);
      inbound.pause();
      out.pause();
      const handed = handOver(inbound, out, undefined, timeouts);
      if (typeof handed === 'string') {
        inbound.pipe(out);
        out.pipe(inbound);
      }
      resolve(handed);
    };
    const counted = (chunk: Buffer) => {
      seen += chunk.length;
      tryNow();
    };
    for (const socket of [inbound, out]) socket.on('data', counted).on('drain', tryNow).once('end', ended).once('close', ended);
  });
}

const said = new WeakMap<object, Set<string>>();

/** The line that says `owner` relays on streams for `reason`, the first time only (undefined after). */
export function fallbackNotice(owner: object, reason: string): string | undefined {
  const reasons = said.get(owner) ?? new Set<string>();
  said.set(owner, reasons);
  if (reasons.has(reason)) return undefined;
  reasons.add(reason);
  return `connections are relayed on JavaScript streams, not natively: ${reason}`;
}
