// The watchdog of one logged run (scripts/suite.js, runLogged): a worker
// thread, because the runner waits in spawnSync (the run's stdout must be a
// file, not a pipe, for Wine) and its own thread cannot look meanwhile.
//
// It reads the log every POLL_MS; once mocha's summary is in it, the run has
// `boundMs` to exit. A run still there then (a handle left open, or Node hung
// in its own exit, nodejs/node#54918) is described (thread stacks from gdb for
// Linux Node processes; under Wine, its processes), the description appended
// to the log and posted to the runner, and every process under the runner is
// killed. Linux only: it finds the run's processes in /proc.
'use strict';
const { spawnSync } = require('node:child_process');
const { appendFileSync, existsSync, readFileSync, readdirSync, readlinkSync } = require('node:fs');
const { basename } = require('node:path');
const { workerData } = require('node:worker_threads');
const { summaryOf } = require('./suite');

const POLL_MS = 500;
const GDB_TIMEOUT_MS = 60_000;
/** Enough stacks to see a hang; a run that left dozens of processes behind says so in the list. */
const MAX_STACKS = 4;

/** Every process under `ancestor` (not itself), from /proc's parent links. */
function descendants(ancestor) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // it ended meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(name));
  }
  const found = [];
  for (let queue = [ancestor]; queue.length; ) {
    for (const child of children.get(queue.shift()) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function commandLine(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '(ended)';
  }
}

function executable(pid) {
  try {
    return basename(readlinkSync(`/proc/${pid}/exe`));
  } catch {
    return '';
  }
}

/** gdb's stacks of every thread of `pid`, or why there are none. */
function threadStacks(pid) {
  const gdb = spawnSync('gdb', ['-p', String(pid), '-batch', '-ex', 'thread apply all bt'], { encoding: 'utf8', timeout: GDB_TIMEOUT_MS });
  if (gdb.error?.code === 'ENOENT') {
    return '!!! gdb IS NOT INSTALLED: no thread stacks of the hung process. Install it (apt-get install gdb) to see where it hangs.';
  }
  if (gdb.error) return `!!! gdb failed: ${gdb.error.message}`;
  return `${gdb.stdout}${gdb.stderr}`.trim();
}

/** What is known of the hung run: its processes, and the stacks of its Linux Node processes. */
function describe(pids, boundMs) {
  const lines = [`=== WATCHDOG: the run printed its summary but had not exited ${boundMs / 1000} s later; its processes:`];
  for (const pid of pids) lines.push(`  pid ${pid}: ${commandLine(pid)}`);
  const underWine = pids.some((pid) => /\/wine\/|\.exe\b/i.test(commandLine(pid)));
  if (underWine) {
    lines.push('  (under Wine: gdb would show Wine\'s threads, not node.exe\'s; no stacks)');
    return lines.join('\n');
  }
  const nodes = pids.filter((pid) => executable(pid) === 'node');
  // Under qemu-user (binfmt_misc) a process's executable is qemu: gdb there shows qemu's own threads (cpu_loop,
  // do_syscall), never the emulated program's, and qemu-user cannot be attached to once started.
  const emulated = pids.filter((pid) => /^qemu-/.test(executable(pid)));
  if (emulated.length) lines.push(`  (pids ${emulated.join(', ')} run under ${executable(emulated[0])} (qemu-user): gdb would show qemu's threads, not the emulated program's; no stacks)`);
  else if (nodes.length === 0) lines.push('  (no Linux node process among them: no stacks)');
  for (const pid of nodes.slice(0, MAX_STACKS)) lines.push(`--- thread stacks of pid ${pid} (gdb):`, threadStacks(pid));
  if (nodes.length > MAX_STACKS) lines.push(`  (stacks of ${nodes.length - MAX_STACKS} more node processes not taken)`);
  return lines.join('\n');
}

function killAll(pids) {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // it ended meanwhile
    }
  }
}

/** Sleeps up to `ms`, or until the runner raises the stop flag; returns whether it did. */
function stopped(flag, ms) {
  Atomics.wait(flag, 0, 0, ms);
  return Atomics.load(flag, 0) !== 0;
}

function watch({ logFile, boundMs, runnerPid, flag, port }) {
  if (!existsSync('/proc/self/stat')) return; // not Linux: nothing to find the run by
  let summarySeenAt;
  while (!stopped(flag, POLL_MS)) {
    if (summarySeenAt === undefined) {
      const text = readFileSync(logFile, 'utf8').replace(/\r\n/g, '\n');
      if (summaryOf(text)) summarySeenAt = Date.now();
      continue;
    }
    if (Date.now() - summarySeenAt < boundMs) continue;
    const pids = descendants(runnerPid);
    if (pids.length === 0) continue; // exited; the runner stops this watch
    // Decided now, told first: the runner reads it once spawnSync returns, which
    // may be before gdb is done if the run exits meanwhile.
    port.postMessage({ hungMs: boundMs });
    const report = describe(pids, boundMs);
    appendFileSync(logFile, `\n${report}\n=== WATCHDOG: killing pids ${pids.join(', ')} (SIGKILL)\n`);
    killAll(pids);
    return;
  }
}

watch({ ...workerData, flag: new Int32Array(workerData.flag) });
