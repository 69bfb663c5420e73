'use strict';
// process.exit() drops whatever stdout and stderr still hold when they are
// pipes whose reader is behind (Node writes to a pipe without blocking and
// queues the rest): with CI's `tee` slow for a moment, a suite's last 64 KiB,
// its RESULT line with them, were lost. This exits once both have written
// everything (a write's callback runs after every write queued before it).

/** Exits with `code` once everything written to stdout and stderr has gone. */
function exitWhenWritten(code) {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

module.exports = { exitWhenWritten };
