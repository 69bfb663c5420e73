// The CLI's log lines: one per connection and UDP flow as it ends (and, with
// --log-start, as it starts), as text or JSON, each naming its worker.
import type { FlowLog } from './udp-relay';
import type { ConnectionLog } from './tcp-proxy';

export type LogEntry = ConnectionLog | FlowLog;

export interface LogFormat {
  format: 'text' | 'json';
  /** In a worker of --workers N: its number, on every line. */
  worker: number | undefined;
  /** Whether this platform has redirect records (Windows): elsewhere their size, always 0, is left out of text lines. */
  records: boolean;
}

/** A process name as one word of a text line: quoted (JSON) where it has spaces or anything unusual. */
function processName(name: string): string {
  return /^[\w.+-]+$/.test(name) ? name : JSON.stringify(name);
}

/** `write(entry, event)`: one line for an entry, `event` being 'end' (the default) or 'start'. */
export function formatter({ format, worker, records }: LogFormat): (entry: LogEntry, event?: 'start' | 'end') => string {
  if (format === 'json') {
    const named = worker === undefined ? {} : { worker };
    return (entry, event = 'end') => `${JSON.stringify({ time: new Date().toISOString(), ...named, ...(event === 'start' ? { event } : {}), ...entry })}\n`;
  }
  const who = worker === undefined ? '' : ` worker ${worker}`;
  return (entry, event = 'end') => {
    const domain = 'domain' in entry && entry.domain !== undefined ? ` (${entry.domain}, ${entry.learned})` : '';
    const via = 'via' in entry && entry.via !== undefined ? ` via ${entry.via}` : '';
    const owner = entry.process ? ` process=${processName(entry.process.name)}[${entry.process.pid}]` : '';
    // A rule's own name may hold spaces: quoted then, so that a line still splits into its fields.
    const rule = entry.rule === undefined ? '' : ` rule=${/^[\w.\-[\]]+$/.test(entry.rule) ? entry.rule : JSON.stringify(entry.rule)}`;
    const head = `${new Date().toISOString()}${who} ${'protocol' in entry ? 'udp#' : '#'}${entry.id} ${entry.client} -> ${entry.destination ?? '?'}${domain}${via}${owner}${rule}`;
    if (event === 'start') return `${head} start\n`;
    const recordSize = records ? ` records=${entry.records}` : '';
    if ('protocol' in entry) {
      return (
        `${head} up=${entry.datagramsUp}/${entry.bytesUp} down=${entry.datagramsDown}/${entry.bytesDown}${recordSize} ms=${entry.durationMs} ` +
        `end=${entry.end}${entry.error ? ` error=${entry.error}` : ''}\n`
      );
    }
    return `${head} up=${entry.bytesUp} down=${entry.bytesDown}${recordSize} ms=${entry.durationMs} ${entry.error ? `error=${entry.error}` : 'ok'}\n`;
  };
}
