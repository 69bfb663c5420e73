// --workers N: N relay processes on one port, through Node's `cluster`. The
// primary relays nothing: it starts the workers, replaces one that dies after
// it started listening, and on a shutdown signal tells each to stop as the
// single-process proxy would, then waits for them.
//
// How connections reach the workers: on Linux each worker listens on its own
// socket with SO_REUSEPORT (net's `reusePort`) and the kernel spreads the
// connections among them; no connection passes through the primary. On
// Windows (no SO_REUSEPORT) the workers share one listening socket that the
// primary opened (cluster's default there) and each accepts from it. Either
// way each worker looks up and queries its own accepted sockets.
//
// A worker told to stop gets its shutdown deadline plus STOP_GRACE_MS to
// exit, then is killed: Node 24 and 26 can hang inside their own exit
// (nodejs/node#54918), and the primary must not wait for that forever.
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';

/** The IPC messages between the primary and a worker. */
export const LISTENING = 'wfp-redirect:listening';
export const SHUTDOWN = 'wfp-redirect:shutdown';
/** --config: read the rules again (the primary got SIGHUP). */
export const RELOAD = 'wfp-redirect:reload';
/** A second signal: exit now, as a lone proxy does on one (a message, not a signal: Windows has no signal to pass on). */
export const FORCE_STOP = 'wfp-redirect:force-stop';

/**
 * Sends a worker one of the words above. A worker that has just exited (its own Ctrl+C, say) may not yet be seen
 * disconnected: the write fails (EPIPE), and its 'exit' is what tells the primary; without the callback the failure
 * would be an 'error' event that ends the primary.
 */
function tell(worker: Worker, message: { type: string; signal?: string }): void {
  if (worker.isConnected()) worker.send(message, undefined, undefined, () => {});
}

/** The number (1 to N) of this process among the workers; undefined outside a worker. */
export function workerNumber(): number | undefined {
  if (!cluster.isWorker) return undefined;
  const value = Number(process.env.WFP_REDIRECT_WORKER);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}

/** Whether the workers each listen with SO_REUSEPORT (Linux) rather than share the primary's socket. */
export const REUSE_PORT = process.platform === 'linux';

/** A port the OS has free now, for workers told to listen on port 0: each of their own sockets would get another. */
async function freePort(host: string): Promise<number> {
  const server = net.createServer().listen(0, host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const MAX_REPLACEMENTS = 5;
const REPLACEMENT_WINDOW_MS = 60_000;
/** Beyond its shutdown deadline, how long a stopping worker may take to flush its log and exit. */
export const STOP_GRACE_MS = 5_000;
/** After a second signal, how long a worker may take to exit on its own before it is killed. */
const FORCED_EXIT_GRACE_MS = 1_000;

export interface PrimaryOptions {
  count: number;
  listen: { host: string; port: number };
  signals: readonly NodeJS.Signals[];
  /** The workers' own shutdown deadline in ms (--shutdown-timeout). */
  shutdownTimeout: number;
  /** One line about the workers as a whole (stderr). */
  say(message: string): void;
  /** --config: on SIGHUP, tell every worker to read the rules again (each says how that went). */
  reload?: boolean | undefined;
}

/**
 * Runs the primary of `count` workers (each runs this same program); resolves
 * to the exit code once all have stopped: 0 after a shutdown signal; 1 when a
 * worker could not start (the others are stopped then) or, once told to stop,
 * had not exited after `shutdownTimeout` + STOP_GRACE_MS and was killed, or
 * ended otherwise than cleanly (not counting one still loading that the
 * group's shutdown signal ended; one line on stderr names it); 130 after a
 * second signal (each worker told to exit at once; killed if still there
 * FORCED_EXIT_GRACE_MS later).
 */
export async function runPrimary({ count, listen, signals, say, shutdownTimeout, reload }: PrimaryOptions): Promise<number> {
  const port = REUSE_PORT && listen.port === 0 ? await freePort(listen.host) : listen.port;
  const live = new Map<Worker, number>();
  const started = new Set<Worker>();
  /** When workers were replaced: a worker that keeps dying is a fault to report, not to retry forever. */
  const replaced: number[] = [];
  let stopping = false;
  let code = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));

  /** Kill timers of the workers told to stop, cleared as each exits. */
  const killTimers = new Map<Worker, NodeJS.Timeout>();
  /** The workers the primary killed (and said so): their end is no news. */
  const killed = new Set<Worker>();
  /** Kills a worker that had not exited `waitedMs` after `what`, and says so. */
  const kill = (worker: Worker, waitedMs: number, what: string) => {
    say(`worker ${live.get(worker)} (pid ${worker.process.pid}) had not exited ${waitedMs} ms after ${what}; killing it (SIGKILL)`);
    killed.add(worker);
    worker.process.kill('SIGKILL');
  };
  const stopBound = shutdownTimeout + STOP_GRACE_MS;
  const killStuck = (worker: Worker) => {
    if (code === 0) code = 1;
    kill(worker, stopBound, 'it was told to stop');
  };
  const stopAll = (signal: string) => {
    stopping = true;
    for (const worker of live.keys()) {
      tell(worker, { type: SHUTDOWN, signal });
      killTimers.set(worker, setTimeout(() => killStuck(worker), stopBound));
    }
  };
  const fork = (number: number) => {
    const worker = cluster.fork({ WFP_REDIRECT_WORKER: String(number), WFP_REDIRECT_WORKER_PORT: String(port) });
    live.set(worker, number);
    worker.on('message', (message: { type?: string }) => {
      if (message?.type === LISTENING) started.add(worker);
    });
    worker.on('exit', (exitCode, signal) => {
      // 'exit' may come before the channel is read to its end: a worker's last word (that it listens) is heard first.
      if (worker.isConnected()) worker.once('disconnect', () => ended(exitCode, signal));
      else ended(exitCode, signal);
    });
    const ended = (exitCode: number, signal: string) => {
      clearTimeout(killTimers.get(worker));
      killTimers.delete(worker);
      live.delete(worker);
      // Neither a clean stop nor a second signal's exit, and not a kill already said: a failure, as a kill is. A
      // worker still loading when the group's Ctrl+C came had no handler yet: that signal ended nothing it carried.
      const stillLoading = signal !== null && signals.includes(signal as NodeJS.Signals) && !started.has(worker);
      if (stopping && !killed.has(worker) && !stillLoading && (signal || (exitCode !== 0 && exitCode !== 130))) {
        say(`worker ${number} (pid ${worker.process.pid}) ended while stopping (${signal ?? `exit code ${exitCode}`})`);
        if (code === 0) code = 1;
      }
      if (!stopping) {
        const now = Date.now();
        while (replaced.length && replaced[0] < now - REPLACEMENT_WINDOW_MS) replaced.shift();
        if (started.has(worker) && replaced.length < MAX_REPLACEMENTS) {
          replaced.push(now);
          say(`worker ${number} (pid ${worker.process.pid}) stopped (${signal ?? `exit code ${exitCode}`}); starting another`);
          fork(number);
        } else if (started.has(worker)) {
          say(`worker ${number} stopped (${signal ?? `exit code ${exitCode}`}), the ${MAX_REPLACEMENTS + 1}th worker to in a minute; stopping the others`);
          code = 1;
          stopAll('SIGTERM');
        } else {
          say(`worker ${number} could not start (${signal ?? `exit code ${exitCode}`}); stopping the others`);
          code = 1;
          stopAll('SIGTERM');
        }
      }
      started.delete(worker);
      if (live.size === 0) finish();
    };
  };
  for (let number = 1; number <= count; number++) fork(number);
  const pids = [...live.keys()].map((worker) => worker.process.pid).join(', ');
  say(`${count} workers (pids ${pids}) on port ${port}${REUSE_PORT ? ' (SO_REUSEPORT: the kernel spreads the connections)' : ' (one shared listening socket)'}`);

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal does not wait for the workers' deadlines. Each is told, and exits at once as a lone proxy
      // does on a second signal, writing what its log's reader takes and counting the rest. (Passing the signal on
      // would not do: on Windows process.kill() terminates the process, whatever the signal.) One still there a
      // moment later is killed.
      code = 130;
      say(`${signal} again: telling ${live.size} worker(s) to exit at once`);
      for (const worker of live.keys()) tell(worker, { type: FORCE_STOP });
      setTimeout(() => {
        for (const worker of live.keys()) kill(worker, FORCED_EXIT_GRACE_MS, 'the second signal');
      }, FORCED_EXIT_GRACE_MS).unref();
      return;
    }
    say(`${signal}: stopping ${live.size} worker(s)`);
    stopAll(signal);
  };
  // The signal reaches the primary alone (kill PID): each worker is told.
  const onReload = () => {
    say(`SIGHUP: telling ${live.size} worker(s) to read the rules again`);
    for (const worker of live.keys()) tell(worker, { type: RELOAD });
  };
  for (const name of signals) process.on(name, onSignal);
  if (reload) process.on('SIGHUP', onReload);
  await finished;
  for (const name of signals) process.off(name, onSignal);
  process.off('SIGHUP', onReload);
  return code;
}
