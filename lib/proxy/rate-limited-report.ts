/** How often a repeated condition (EMFILE, a loop) is reported, at most. */
export const REPORT_INTERVAL_MS = 10_000;

/**
 * Counts occurrences of a condition and reports the first at once, then at
 * most one summary per interval, so that a flood makes a few lines, not one
 * per event.
 */
export class RateLimitedReport {
  private suppressed = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly report: (count: number, first: boolean) => void) {}

  /** `count` occurrences at once. Returns whether the first was reported on its own (else all are counted for the summary). */
  note(count = 1): boolean {
    if (this.timer) {
      this.suppressed += count;
      return false;
    }
    this.suppressed += count - 1;
    this.report(1, true);
    this.timer = setTimeout(() => this.flush(), REPORT_INTERVAL_MS).unref();
    return true;
  }

  private flush(): void {
    this.timer = undefined;
    if (this.suppressed === 0) return;
    const count = this.suppressed;
    this.suppressed = 0;
    this.report(count, false);
    this.timer = setTimeout(() => this.flush(), REPORT_INTERVAL_MS).unref();
  }

  /** Reports what is still counted, and stops. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed > 0) this.report(this.suppressed, false);
    this.suppressed = 0;
  }
}
