// The connection log's output: lines gathered for a moment and written
// together. One write per connection was the CLI's largest cost per connection
// beyond a plain relay (a system call each; see README "Relay speed"), and a
// log line may well arrive 20 ms late.
import { writeSync } from 'node:fs';

const FLUSH_AFTER_MS = 20;
const FLUSH_AT_BYTES = 64 * 1024;

export class LineWriter {
  private pending: string[] = [];
  private size = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly onExit = () => this.flushSync();

  constructor(private readonly stream: NodeJS.WritableStream & { fd?: number }) {
    // Whatever is still gathered when the process exits (process.exit included) goes out synchronously.
    process.on('exit', this.onExit);
  }

  /** Writes what is gathered and stops watching for the process's exit. */
  close(): void {
    this.flush();
    process.off('exit', this.onExit);
  }

  write(line: string): void {
    this.pending.push(line);
    this.size += line.length;
    if (this.size >= FLUSH_AT_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_AFTER_MS).unref();
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.size = 0;
    this.stream.write(text);
  }

  private flushSync(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    try {
      if (typeof this.stream.fd === 'number') writeSync(this.stream.fd, text);
      else this.stream.write(text);
    } catch {
      // The reader is gone: nothing to write to.
    }
  }
}
