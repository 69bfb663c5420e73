// The relay benchmark's rows through an upstream proxy (bench/relay.ts): the
// CLI with --transparent --via, side by side with redsocks (Debian's
// `redsocks`, the established Linux tool for exactly this job) in front of the
// same upstream: dante (SOCKS5, no auth) and tinyproxy (HTTP CONNECT, no auth).
// Both transparent proxies sit behind one iptables REDIRECT that takes the
// connections of the load's user only (`-m owner --uid-owner`, the per-user
// recipe of the README), so neither the proxies nor the upstream (all root)
// are redirected again. Every server runs from a config file generated into a
// temp folder and is stopped (with its children) by the benchmark.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The user the load runs as when its connections are to be redirected by owner; any uid, no account needed. */
export const LOAD_UID = 47_250;

export type UpstreamKind = 'dante' | 'tinyproxy';

export interface UpstreamServer {
  port: number;
  stop(): Promise<void>;
}

const groups = new Set<number>();
const dirs = new Set<string>();

/** Starts `command` in a process group of its own (dante forks), its output into `log`. */
export function launchGroup(command: string, args: string[], log: string): ChildProcess {
  const fd = openSync(log, 'w');
  const child = spawn(command, args, { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  if (child.pid !== undefined) groups.add(child.pid);
  child.once('exit', () => {
    if (child.pid !== undefined) groups.delete(child.pid);
  });
  return child;
}

/** SIGTERM (dante's mother then ends its children), SIGKILL to the group after 3 s or if anything of it is left. */
export async function stopGroup(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
  if (pid !== undefined) killGroup(pid);
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Nothing left of it.
  }
}

/** For the benchmark's exit handler (also on Ctrl+C): every group still running, every config folder left. */
export function killAllGroups(): void {
  for (const pid of groups) killGroup(pid);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

/** A temp folder for one server's config; removed by `removeConfigDir` (or at exit). */
export function configDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `wfp-bench-${name}-`));
  dirs.add(dir);
  return dir;
}

export function removeConfigDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

function removeAfter(dir: string, stop: () => Promise<void>): () => Promise<void> {
  return async () => {
    await stop();
    removeConfigDir(dir);
  };
}

export function danteConfig(host: string, port: number): string {
  return [
    'logoutput: stderr',
    `internal: ${host} port = ${port}`,
    `external: ${host}`,
    'socksmethod: none',
    'clientmethod: none',
    'user.privileged: root',
    'user.unprivileged: nobody',
    'client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }',
    'socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 command: connect }',
    '',
  ].join('\n');
}

export function tinyproxyConfig(host: string, port: number, connectPort: number, logFile: string): string {
  return [
    `Port ${port}`,
    `Listen ${host}`,
    'Timeout 60',
    // Above the load's 32 connections in flight and 8 streams, with room for closing ones.
    'MaxClients 256',
    `Allow ${host}`,
    `ConnectPort ${connectPort}`,
    `LogFile "${logFile}"`,
    'LogLevel Warning',
    'User nobody',
    'Group nogroup',
    '',
  ].join('\n');
}

/** redsocks as Debian's example config has it (log_info on), in the foreground, logging to its output. */
export function redsocksConfig(listenHost: string, listenPort: number, upstreamPort: number, type: 'socks5' | 'http-connect'): string {
  return [
    'base {',
    '  log_debug = off;',
    '  log_info = on;',
    '  log = stderr;',
    '  daemon = off;',
    '  redirector = iptables;',
    '}',
    'redsocks {',
    `  local_ip = ${listenHost};`,
    `  local_port = ${listenPort};`,
    `  ip = ${listenHost};`,
    `  port = ${upstreamPort};`,
    `  type = ${type};`,
    '}',
    '',
  ].join('\n');
}

/** Starts one upstream on `port`; `ready` waits until it accepts. */
export async function startUpstream(
  kind: UpstreamKind,
  host: string,
  port: number,
  serverPort: number,
  logs: string,
  ready: (port: number, child: ChildProcess) => Promise<void>,
): Promise<UpstreamServer> {
  const dir = configDir(kind);
  const config = join(dir, `${kind}.conf`);
  let child: ChildProcess;
  if (kind === 'dante') {
    writeFileSync(config, danteConfig(host, port));
    child = launchGroup('danted', ['-f', config, '-p', join(dir, 'danted.pid')], join(logs, 'dante.log'));
  } else {
    writeFileSync(config, tinyproxyConfig(host, port, serverPort, join(logs, 'tinyproxy.log')));
    child = launchGroup('tinyproxy', ['-d', '-c', config], join(logs, 'tinyproxy.out'));
  }
  const stop = removeAfter(dir, () => stopGroup(child));
  try {
    await ready(port, child);
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, stop };
}

/** The rule that sends the load's connections to the server (and only the load's) to `proxyPort`. */
export function ownerRedirect(host: string): { before(serverPort: number, proxyPort: number): void; after(): void; loadUid: number } {
  let rule: string[] = [];
  return {
    loadUid: LOAD_UID,
    before(serverPort, proxyPort) {
      rule = ['OUTPUT', '-p', 'tcp', '-d', host, '--dport', String(serverPort), '-m', 'owner', '--uid-owner', String(LOAD_UID), '-j', 'REDIRECT', '--to-ports', String(proxyPort)];
      execFileSync('iptables', ['-t', 'nat', '-A', ...rule]);
    },
    after() {
      execFileSync('iptables', ['-t', 'nat', '-D', ...rule]);
    },
  };
}
