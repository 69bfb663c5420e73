// The rules in force, from a file that can be read again (SIGHUP; on Windows
// a change of the file): a new config replaces the old only once it has been
// read and checked whole, so a bad one leaves the old in force. Connections
// already decided keep their decision; only new ones see the new rules.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { loadConfig, type ParseOptions } from './config';
import { type MatchFacts, RuleMatcher, type Verdict } from './matcher';

export class RuleSet {
  private current: RuleMatcher;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;

  /** Reads and checks `file` now; throws ConfigError. */
  constructor(
    readonly file: string,
    private readonly options: ParseOptions & { foldProcess?: boolean } = {},
  ) {
    this.current = new RuleMatcher(loadConfig(file, options), options);
  }

  get matcher(): RuleMatcher {
    return this.current;
  }

  /** Whether any rule in force asks for a domain (connections are then sniffed). */
  get wantsDomain(): boolean {
    return this.current.wantsDomain;
  }

  /** Whether any rule in force names a process (the proxy then looks processes up). */
  get wantsProcess(): boolean {
    return this.current.wantsProcess;
  }

  match(facts: MatchFacts): Verdict {
    return this.current.match(facts);
  }

  /** Reads the file again; the new rules are in force once it returns. Throws ConfigError and keeps the old rules. */
  reload(): RuleMatcher {
    const next = new RuleMatcher(loadConfig(this.file, this.options), this.options);
    this.current = next;
    return next;
  }

  /**
   * Calls `changed` once the file has changed and been quiet for `debounceMs`
   * (editors write a file in several steps, or replace it). The directory is
   * watched, not the file: a file replaced by a rename keeps being seen.
   */
  watch(changed: () => void, debounceMs = 300): void {
    this.unwatch();
    const name = basename(this.file);
    this.watcher = watch(dirname(resolve(this.file)), { persistent: false }, (_event, filename) => {
      if (filename !== null && String(filename) !== name) return;
      clearTimeout(this.debounce);
      this.debounce = setTimeout(changed, debounceMs).unref();
    });
    // A directory that goes away (or a watch the OS refuses later) ends the watching; reloading by hand still works.
    this.watcher.on('error', () => this.unwatch());
  }

  unwatch(): void {
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
  }
}
