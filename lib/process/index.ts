// The process behind a connection or UDP flow whose client is on this host
// (pid, name, path): Linux through sock_diag and /proc (linux.ts), Windows
// through the owner-pid tables (windows.ts). Unknown (undefined), never an
// error, for a remote client, a process that is gone, or one this process may
// not inspect; only a caller's mistake is an error.
import { binding } from '../native';
import { describeLinuxProcess, LinuxProcessLookup } from './linux';
import { isThisHost } from './local-address';
import { checkQuery } from './query';
import { describeWindowsProcess, lookupWindows } from './windows';
import type { ProcessInfo, ProcessLookupOptions, ProcessLookupQuery, ProcessLookupStats } from './types';
import { outOfRange } from '../errors';

export type { ProcessEndpoint, ProcessInfo, ProcessLookupOptions, ProcessLookupQuery, ProcessLookupStats } from './types';

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) throw outOfRange('ERR_OUT_OF_RANGE', `options.${name} must be a whole number of at least 1. Received ${String(value)}`);
  return value;
}

/** A process lookup with its own cache and budget; `lookupProcess` uses one shared instance. */
export class ProcessLookup {
  private readonly counts: ProcessLookupStats = { lookups: 0, cacheHits: 0, cacheStale: 0, exhausted: 0, timedOut: 0, examined: 0, failures: 0, lastFailure: undefined };
  private readonly linux: LinuxProcessLookup | undefined;
  private readonly timeoutMs: number;

  constructor(options: ProcessLookupOptions = {}) {
    const budget = positive(options.budget, 20_000, 'budget');
    const cacheSize = positive(options.cacheSize, 1024, 'cacheSize');
    this.timeoutMs = positive(options.timeoutMs, 1000, 'timeoutMs');
    this.linux = process.platform === 'linux' ? new LinuxProcessLookup(budget, cacheSize, this.counts) : undefined;
  }

  /** Resolves to the process, or undefined when it is unknown; rejects only for a malformed query. */
  async lookup(query: ProcessLookupQuery): Promise<ProcessInfo | undefined> {
    const checked = checkQuery(query);
    this.counts.lookups++;
    if (!isThisHost(checked.local.address)) return undefined;
    let timer: NodeJS.Timeout | undefined;
    // A lookup never holds its caller past its bound: unknown then (the scan ends at its budget on its own).
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        this.counts.timedOut++;
        resolve(undefined);
      }, this.timeoutMs).unref();
    });
    try {
      return await Promise.race([this.ask(checked), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async ask(checked: ReturnType<typeof checkQuery>): Promise<ProcessInfo | undefined> {
    try {
      if (this.linux) return binding.hasSocketDiag ? await this.linux.lookup(checked) : undefined;
      if (process.platform === 'win32' && binding.hasOwnerPidTables) return lookupWindows(checked);
      return undefined;
    } catch (error) {
      // The OS refused or failed a query: unknown, counted.
      this.counts.failures++;
      const code = (error as { code?: unknown } | null)?.code;
      this.counts.lastFailure = typeof code === 'string' ? code : String(error);
      return undefined;
    }
  }

  get stats(): ProcessLookupStats {
    return { ...this.counts };
  }
}

let shared: ProcessLookup | undefined;

/**
 * The process behind a connection or UDP flow whose client is on this host:
 * `{ pid, name, path }`, or undefined when it is unknown (a remote client, a
 * process gone, no permission, a platform without a way). See
 * ProcessLookupQuery for which endpoints to give.
 */
export function lookupProcess(query: ProcessLookupQuery): Promise<ProcessInfo | undefined> {
  shared ??= new ProcessLookup();
  return shared.lookup(query);
}

/**
 * The name and path of a process known by its id (e.g. a WFP redirect
 * context's, `decodeContext(..., 'wfpr').processId`), or undefined when it is
 * gone or may not be inspected.
 */
export async function describeProcess(pid: number): Promise<ProcessInfo | undefined> {
  if (!Number.isSafeInteger(pid) || pid < 1 || pid > 0xffffffff) throw outOfRange('ERR_OUT_OF_RANGE', `The "pid" argument must be an integer from 1 to 4294967295. Received ${String(pid)}`);
  try {
    if (process.platform === 'win32') return describeWindowsProcess(pid);
    if (process.platform === 'linux') return describeLinuxProcess(pid);
  } catch {
    // unknown
  }
  return undefined;
}
