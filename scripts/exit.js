'use strict';
// process.exit() drops whatever stdout and stderr still hold when they are
// pipes whose reader is behind (Node writes to a pipe without blocking and
// queues the rest): with CI's `tee` slow for a moment, a suite's last 64 KiB,
// its RESULT line with them, were lost. This exits once both have written
// everything (a write's callback runs after every write queued before it).

// A reader that has stopped reading is not waited for longer than this.
const WRITTEN_WITHIN_MS = 10_000;

/** Exits with `code` once everything written to stdout and stderr has gone (or at the bound, or when a reader has gone). */
function exitWhenWritten(code) {
  process.exitCode = code;
  const exit = () => process.exit(code);
  // A reader gone (EPIPE) must not turn the exit into an uncaught exception's, with another code.
  process.stdout.once('error', exit);
  process.stderr.once('error', exit);
  setTimeout(exit, WRITTEN_WITHIN_MS).unref();
  process.stdout.write('', () => process.stderr.write('', exit));
}

module.exports = { exitWhenWritten };
