// A bounded look at the first bytes of a connection: read until the bytes
// name a host (TLS then HTTP), prove they never will, or a byte or time bound
// is reached, and hand back every byte read so the caller can replay them.
import type { Readable } from 'node:stream';
import { sniffHttpHost } from './http';
import type { HttpHostFound, HttpHostResult, HttpNoneReason, None, TlsHelloFound, TlsHelloResult, TlsNoneReason } from './result';
import { requireBytes } from './reader';
import { sniffTlsClientHello } from './tls';

export const DEFAULT_SNIFF_BYTES = 16 * 1024;
/** Long enough for a client's first segment on a slow path; short enough that a server-speaks-first protocol (SMTP, SSH's banner wait) barely notices. */
export const DEFAULT_SNIFF_TIMEOUT_MS = 300;

export type StreamNoneReason =
  | Exclude<TlsNoneReason, 'not-tls'>
  | HttpNoneReason
  | 'no-data' // nothing arrived within the time bound: perhaps the server speaks first
  | 'timeout' // a valid prefix, still incomplete at the time bound
  | 'byte-limit' // a valid prefix, still incomplete at the byte bound
  | 'ended' // the stream ended or closed first
  | 'stream-error';

export type StreamSniffResult = TlsHelloFound | HttpHostFound | None<StreamNoneReason>;

export interface StreamSniff {
  result: StreamSniffResult;
  /**
   * Every byte read from the stream, in order (at most `maxBytes`). Send them
   * to the destination before the rest of the stream, or `stream.unshift(bytes)`.
   */
  bytes: Buffer;
  elapsedMs: number;
}

export interface SniffStreamOptions {
  /** Stop reading after this many bytes. Default 16 KiB. */
  maxBytes?: number | undefined;
  /** Stop waiting after this long. Default 300 ms. */
  timeoutMs?: number | undefined;
}

/** A TLS ClientHello's name, else an HTTP/1.x request's host, in a stream's first bytes. */
export function sniffFirstBytes(bytes: Uint8Array): TlsHelloResult | HttpHostResult {
  requireBytes(bytes, 'bytes');
  const tls = sniffTlsClientHello(bytes);
  return tls.kind === 'none' && tls.reason === 'not-tls' ? sniffHttpHost(bytes) : tls;
}

/**
 * Reads the start of a paused stream (a socket accepted with pauseOnConnect)
 * and answers what it names. Never rejects: a stream error is a result. The
 * stream is left paused, holding whatever arrived past the bytes returned.
 */
export function sniffStream(stream: Readable, options: SniffStreamOptions = {}): Promise<StreamSniff> {
  const { maxBytes, timeoutMs } = checkOptions(stream, options);
  const started = performance.now();
  const buffer = Buffer.alloc(maxBytes);
  let size = 0;
  return new Promise((resolve) => {
    let done = false;
    const finish = (ending: StreamNoneReason | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.off('readable', onReadable).off('end', onEnd).off('close', onEnd).off('error', onError);
      const bytes = Buffer.from(buffer.subarray(0, size));
      resolve({ result: settle(sniffFirstBytes(bytes), ending), bytes, elapsedMs: performance.now() - started });
    };
    const onReadable = () => {
      for (let chunk: Buffer | null; size < maxBytes && (chunk = stream.read() as Buffer | null) !== null; ) {
        const taken = Math.min(chunk.length, maxBytes - size);
        chunk.copy(buffer, size, 0, taken);
        size += taken;
        if (taken < chunk.length) stream.unshift(chunk.subarray(taken)); // past the bound: left in the stream
      }
      const verdict = sniffFirstBytes(buffer.subarray(0, size));
      if (verdict.kind !== 'need-more') finish(undefined);
      else if (size >= maxBytes) finish('byte-limit');
    };
    const onEnd = () => finish('ended');
    const onError = () => finish('stream-error');
    const timer = setTimeout(() => finish(size === 0 ? 'no-data' : 'timeout'), timeoutMs);
    if (stream.destroyed) return finish('ended');
    stream.on('readable', onReadable).on('end', onEnd).on('close', onEnd).on('error', onError);
  });
}

/** The answer once reading has stopped: a prefix still waiting for more becomes none, saying why it stopped. */
function settle(verdict: TlsHelloResult | HttpHostResult, ending: StreamNoneReason | undefined): StreamSniffResult {
  if (verdict.kind === 'found') return verdict;
  if (verdict.kind === 'none') return verdict as None<StreamNoneReason>;
  return { kind: 'none', reason: ending ?? 'timeout' };
}

function checkOptions(stream: Readable, options: SniffStreamOptions): { maxBytes: number; timeoutMs: number } {
  if (stream === null || typeof stream !== 'object' || typeof stream.read !== 'function' || typeof stream.unshift !== 'function') {
    throw new TypeError('stream must be a Readable (a net.Socket)');
  }
  if (stream.readableObjectMode || stream.readableEncoding !== null) throw new TypeError('stream must yield bytes: no object mode, no encoding');
  const maxBytes = options.maxBytes ?? DEFAULT_SNIFF_BYTES;
  const timeoutMs = options.timeoutMs ?? DEFAULT_SNIFF_TIMEOUT_MS;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new TypeError('maxBytes must be a positive integer');
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new TypeError('timeoutMs must be a finite number >= 0');
  return { maxBytes, timeoutMs };
}
