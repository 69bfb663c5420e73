// The connection log's output: lines gathered for a moment and written
// together. One write per connection was the CLI's largest cost per connection
// beyond a plain relay (a system call each; see docs/benchmarks.md), and a
// log line may well arrive 20 ms late.
//
// The log is never worth a connection: when whatever reads it goes away
// (`| head`, a restarted journald, a killed tee) writing stops, once, and the
// proxy goes on relaying; when the reader is slower than the log, lines beyond
// a bound are dropped and counted instead of piling up in memory.
import { Buffer } from 'node:buffer';
import { writeSync } from 'node:fs';

const FLUSH_AFTER_MS = 20;
const FLUSH_AT_BYTES = 64 * 1024;
/**
 * The most one write carries: POSIX makes a pipe write of at most PIPE_BUF
 * (4096 on Linux) bytes atomic, so --workers, whose processes share one
 * stdout, never splice one worker's line into another's (64 KiB writes did:
 * about 1 line in 100 under a slow reader).
 */
const ATOMIC_WRITE_BYTES = 4096;
/** Log text the stream may hold unwritten (its writableLength) before new lines are dropped. */
export const MAX_UNWRITTEN_BYTES = 1024 * 1024;
/** Lines about dropped lines remembered until known written (see linesIn). */
const MAX_NOTICES = 64;

type LogStream = NodeJS.WritableStream & { fd?: number; writableLength?: number };

/**
 * Keeps a write error on `stream` (EPIPE when its reader has gone) from
 * ending the process; `onError` hears of the first one. Returns a function
 * that stops listening.
 */
export function survivesItsReader(stream: NodeJS.WritableStream, onError: (error: NodeJS.ErrnoException) => void): () => void {
  let told = false;
  const listener = (error: NodeJS.ErrnoException) => {
    if (told) return;
    told = true;
    onError(error);
  };
  stream.on('error', listener);
  return () => stream.off('error', listener);
}

export class LineWriter {
  private pending: string[] = [];
  private size = 0;
  /**
   * Chunks waiting for the one write in flight: a second write while one is
   * pending would let Node join them into one writev, which a pipe does not
   * keep whole.
   */
  private queued: string[] = [];
  private queuedBytes = 0;
  /** The chunk of the write in flight (part of it may be out already). */
  private inFlight: string | undefined;
  /** finish() calls waiting for every chunk to be written. */
  private written: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Set once a write has failed: the reader is gone and nothing more is written. */
  private failed: string | undefined;
  /** Lines not written because the reader was not keeping up, since the last that were. */
  private dropped = 0;
  /** Lines that say how many were dropped, not yet known written: each stands for that many lines when lost. */
  private notices = new Map<string, number>();
  private readonly onExit = () => this.flushSync();
  private readonly stopWatching: () => void;

  /** `said`: one line about the log itself (stderr), e.g. that it stopped. */
  constructor(
    private readonly stream: LogStream,
    private readonly said: (message: string) => void = () => {},
  ) {
    // Whatever is still gathered when the process exits (process.exit included) goes out synchronously.
    process.on('exit', this.onExit);
    this.stopWatching = survivesItsReader(stream, (error) => this.stop(error));
  }

  /** Writes what is gathered and stops watching for the process's exit. */
  close(): void {
    this.flush();
    process.off('exit', this.onExit);
    this.stopWatching();
  }

  /** Lines dropped so far because the reader was not keeping up (reset when a line about them is written). */
  get droppedLines(): number {
    return this.dropped;
  }

  write(line: string): void {
    if (this.failed !== undefined) return;
    if ((this.stream.writableLength ?? 0) + this.queuedBytes + this.size >= MAX_UNWRITTEN_BYTES) {
      if (this.dropped++ === 0) this.said(`the log's reader is not keeping up: dropping log lines until it catches up (more than ${MAX_UNWRITTEN_BYTES / 1024} KiB unwritten)`);
      return;
    }
    this.sayDropped();
    this.pending.push(line);
    this.size += line.length;
    if (this.size >= FLUSH_AT_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_AFTER_MS).unref();
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const lines = this.take();
    if (lines === undefined) return;
    for (const chunk of atomicChunks(lines)) {
      this.queued.push(chunk);
      this.queuedBytes += chunk.length;
    }
    this.writeNext();
  }

  /**
   * Writes what is gathered (with the count of lines dropped so far) and
   * resolves once every line is written, to 0; or at `timeoutMs`, giving up,
   * to at most how many lines are lost: those queued and dropped, and those of
   * the write in flight, which libuv cannot take back and which may still go
   * out before the process exits. A write of up to PIPE_BUF bytes into a pipe
   * goes out whole or not at all. Nothing more is written after.
   */
  async finish(timeoutMs: number): Promise<number> {
    this.sayDropped();
    this.flush();
    if (this.inFlight === undefined || this.failed !== undefined) return 0;
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<boolean>((resolve) => this.written.push(() => resolve(true)));
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, timeoutMs, false)));
    const inTime = await Promise.race([done, late]);
    clearTimeout(timer);
    if (inTime || this.failed !== undefined) return 0;
    const lost = this.linesIn([this.inFlight ?? '', ...this.queued, ...this.pending]);
    this.failed = 'ETIMEDOUT';
    this.pending = [];
    this.size = 0;
    this.queued = [];
    this.queuedBytes = 0;
    this.dropped = 0;
    this.allWritten();
    return lost;
  }

  /** Lines dropped since the last such line (the reader more than MAX_UNWRITTEN_BYTES behind): one line says how many. */
  private sayDropped(): void {
    if (this.dropped === 0 || this.failed !== undefined) return;
    const line = `${new Date().toISOString()} log: ${this.dropped} line(s) dropped: the log's reader was not keeping up\n`;
    this.notices.set(line, this.dropped);
    // The oldest are long written where the queue never empties to forget them (allWritten): the map stays small.
    if (this.notices.size > MAX_NOTICES) this.notices.delete(this.notices.keys().next().value!);
    this.pending.push(line);
    this.size += line.length;
    this.dropped = 0;
  }

  /** Writes the next queued chunk once the one before it is written. */
  private writeNext(): void {
    if (this.inFlight !== undefined || this.failed !== undefined) return;
    const chunk = this.queued.shift();
    if (chunk === undefined) return this.allWritten();
    this.queuedBytes -= chunk.length;
    this.inFlight = chunk;
    try {
      this.stream.write(chunk, (error) => {
        this.inFlight = undefined;
        if (error) this.stop(error as NodeJS.ErrnoException);
        else this.writeNext();
      });
    } catch (error) {
      this.inFlight = undefined;
      this.stop(error as NodeJS.ErrnoException);
    }
  }

  private allWritten(): void {
    // Every queued chunk is out: only a notice still gathered (pending) can be lost now.
    if (this.notices.size > 0) for (const notice of this.notices.keys()) if (!this.pending.includes(notice)) this.notices.delete(notice);
    if (this.written.length === 0) return;
    const waiting = this.written;
    this.written = [];
    for (const resolve of waiting) resolve();
  }

  private take(): string[] | undefined {
    if (this.pending.length === 0 || this.failed !== undefined) return undefined;
    const lines = this.pending;
    this.pending = [];
    this.size = 0;
    return lines;
  }

  private stop(error: NodeJS.ErrnoException): void {
    if (this.failed !== undefined) return;
    this.failed = error.code ?? error.message;
    this.pending = [];
    this.size = 0;
    this.queued = [];
    this.queuedBytes = 0;
    this.said(`writing the log failed (${this.failed}): its reader has gone; no more log lines, relaying goes on`);
    this.allWritten();
  }

  /**
   * The log lines `chunks` (not written) and the lines dropped and not yet
   * said stand for: a line that says how many were dropped counts as those.
   */
  private linesIn(chunks: string[]): number {
    let lines = this.dropped;
    for (const chunk of chunks) lines += countLines(chunk);
    for (const [notice, count] of this.notices) if (chunks.some((chunk) => chunk.includes(notice))) lines += count - 1;
    return lines;
  }

  /**
   * At the process's exit (a second signal, process.exit): what is left goes
   * out now, as far as the reader takes it without waiting, and in order; the
   * rest is counted on stderr. Nothing follows a write still in flight: libuv
   * gets no later turn to finish it, and a line written past it would come
   * out of turn. A write of at most PIPE_BUF bytes into a full pipe fails
   * whole (EAGAIN).
   */
  private flushSync(): void {
    if (this.failed !== undefined) return;
    const chunks = [...this.queued, ...atomicChunks(this.take() ?? [])];
    this.queued = [];
    this.queuedBytes = 0;
    let written = 0;
    if (this.inFlight === undefined) {
      try {
        for (; written < chunks.length; written++) {
          const chunk = chunks[written]!;
          if (typeof this.stream.fd !== 'number') this.stream.write(chunk);
          // A line longer than PIPE_BUF, partly taken: it and those after it are counted.
          else if (writeSync(this.stream.fd, chunk) < Buffer.byteLength(chunk)) break;
        }
      } catch {
        // The reader is behind (EAGAIN) or gone: what is left is counted below.
      }
    }
    const lost = this.linesIn([this.inFlight ?? '', ...chunks.slice(written)]);
    this.failed = 'EXITED';
    // "Up to": the write in flight may have gone out, its callback not yet run.
    if (lost > 0) this.said(`up to ${lost} log line(s) not written: the proxy exited before the log's reader took them`);
  }
}

function countLines(text: string): number {
  let lines = 0;
  for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', at + 1)) lines++;
  return lines;
}

/** Whole lines joined into writes of at most ATOMIC_WRITE_BYTES (a longer line goes alone). */
export function atomicChunks(lines: string[]): string[] {
  const chunks: string[] = [];
  let chunk: string[] = [];
  let bytes = 0;
  for (const line of lines) {
    const length = Buffer.byteLength(line);
    if (bytes + length > ATOMIC_WRITE_BYTES && chunk.length > 0) {
      chunks.push(chunk.join(''));
      chunk = [];
      bytes = 0;
    }
    chunk.push(line);
    bytes += length;
  }
  if (chunk.length > 0) chunks.push(chunk.join(''));
  return chunks;
}
