// The package as users get it, run by scripts/test-package.js (not part of the
// suite that runs in every Node line: it packs once, and runs the other
// runtimes itself). `npm pack` builds the prebuilt addons; the tarball is
// installed from the npm cache with install scripts off, with a PATH that has
// node and npm and nothing else (no compiler, no Python), and then used: in
// this Linux Node, in Windows node.exe under Wine and in Linux arm64 Node under
// qemu-user, each loading its own binary from the same tarball.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const root = join(__dirname, '..');
const SMOKE = join(__dirname, 'package-smoke.js');
const PREBUILDS = ['linux-x64', 'linux-arm64', 'win32-x64'];
// What the machine has and this test must not find on its PATH.
const BUILD_TOOLS = ['python3', 'python', 'g++', 'gcc', 'c++', 'cc', 'clang', 'make'];
const NETWORK = /^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|https?_proxy|no_proxy|npm_config_(registry|cafile|ca|proxy|https_proxy|noproxy|strict_ssl|cache))$/i;
const scripts = require('../scripts/node-builds') as {
  WIN_VERSIONS: string[];
  LINUX_VERSIONS: string[];
  officialNode(platform: string, version: string): string;
};

let work: string;
let tarball: string;
let app: string;
let installed: string;
/** Only node and npm: no compiler, no Python. */
let bareEnv: NodeJS.ProcessEnv;

/** A folder holding only `node` (this Node) and `npm` (the machine's npm-cli.js). */
function bareBin(): string {
  const bin = join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  const npm = realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
  symlinkSync(npm, join(bin, 'npm'));
  return bin;
}

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  const run = spawnSync('npm', args, { cwd, env, encoding: 'utf8', timeout: 300_000 });
  assert.equal(run.status, 0, `npm ${args.join(' ')} failed (${run.error?.message ?? run.status}):\n${run.stdout}\n${run.stderr}`);
  return run.stdout;
}

type Spawner = (args: string[], fd: number) => { error?: Error; status: number | null };

/** A spawner that runs `command` with `args` in `env`, its output on the file `fd`. */
const spawner = (command: string, env: NodeJS.ProcessEnv, prefix: string[] = []): Spawner => (args, fd) =>
  spawnSync(command, [...prefix, ...args], { env, stdio: ['ignore', fd, fd], timeout: 300_000 });

/** Runs the smoke script (test/package-smoke.ts) on the package installed in `dir`; what it wrote. */
function smoke(dir: string, spawnIt: Spawner): Record<string, unknown> {
  const out = join(dir, `smoke-${process.hrtime.bigint()}.json`);
  const log = join(dir, 'smoke.log');
  const fd = openSync(log, 'w');
  try {
    const run = spawnIt([SMOKE, join(dir, 'node_modules', 'wfp-redirect'), out], fd);
    assert.ok(existsSync(out), `the smoke run wrote nothing (${run.error?.message ?? run.status}): ${readFileSync(log, 'utf8')}`);
  } finally {
    closeSync(fd);
  }
  return JSON.parse(readFileSync(out, 'utf8'));
}

function proxyCli(dir: string, args: string[], env = bareEnv) {
  return spawnSync('node', [join(dir, 'node_modules', '.bin', 'wfp-redirect-proxy'), ...args], { env, encoding: 'utf8', timeout: 60_000 });
}

describe('the packed package, installed with no compiler and no install scripts', function () {
  this.timeout(300_000);

  before(function () {
    work = mkdtempSync(join(tmpdir(), 'wfp-pack-'));
    // Packs this checkout: prepack compiles and builds the three prebuilds, postpack removes the Linux ones.
    execFileSync('npm', ['pack', '--pack-destination', work], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    const packed = readdirSync(work).filter((name) => name.endsWith('.tgz'));
    assert.equal(packed.length, 1, `npm pack made ${packed.join(', ') || 'nothing'}`);
    tarball = join(work, packed[0]!);
    app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), '{ "name": "app", "private": true }\n');
    // Nothing of this environment but how to reach the registry (certificates, proxies).
    const network = Object.entries(process.env).filter(([name]) => NETWORK.test(name));
    bareEnv = { ...Object.fromEntries(network), PATH: bareBin(), HOME: process.env.HOME, TMPDIR: tmpdir() };
    installed = join(app, 'node_modules', 'wfp-redirect');
  });
  after(() => work && rmSync(work, { recursive: true, force: true }));

  it('holds the prebuilt addons, the compiled JavaScript and no prepare script', function () {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    for (const target of PREBUILDS) assert.ok(files.includes(`package/prebuilds/${target}/wfp_redirect.node`), `no ${target} prebuild in ${tarball}`);
    for (const file of ['package/dist/index.js', 'package/dist/index.d.ts', 'package/bin/wfp-redirect-proxy', 'package/scripts/install.js', 'package/binding.gyp']) {
      assert.ok(files.includes(file), `${file} missing`);
    }
    assert.deepEqual(files.filter((file) => /^package\/(build|test|dist-test|\.cache)\//.test(file)), []);
    const manifest = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }));
    assert.equal(manifest.scripts.prepare, undefined, 'a prepare script: npm 11 warns about it and it cannot run in an installed package');
    assert.deepEqual(Object.keys(manifest.dependencies ?? {}), ['node-addon-api'], 'the runtime needs no dependency; node-addon-api is for a build from source');
  });

  it('installs from the npm cache, scripts off, with no compiler and no Python on PATH', function () {
    for (const tool of BUILD_TOOLS) {
      assert.equal(spawnSync(tool, ['--version'], { env: bareEnv }).error?.message.includes('ENOENT'), true, `${tool} is on the bare PATH`);
    }
    // --prefer-offline, not --offline: npm ci caches node-addon-api's tarball but not its registry entry.
    npm(['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', tarball], app, bareEnv);
    assert.ok(existsSync(join(installed, 'prebuilds', 'linux-x64', 'wfp_redirect.node')));
    assert.ok(!existsSync(join(installed, 'build')), 'something was built: no build/ is expected');
  });

  it('in Linux Node: loads its prebuilt addon, finds an accepted socket, queries it, and carries bytes over connectRedirected', function () {
    if (process.platform !== 'linux' || process.arch !== 'x64') this.skip();
    const result = smoke(app, spawner('node', bareEnv));
    assert.deepEqual(result, {
      arch: 'x64',
      platform: 'linux',
      build: 'prebuild',
      handleType: 'number',
      originalDestination: { code: 'ERR_NOT_REDIRECTED' },
      echoed: 'ping over connectRedirected',
    });
  });

  it('wfp-redirect-proxy: --help, and an --upstream relay carrying bytes', async function () {
    const help = proxyCli(app, ['--help']);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Usage: wfp-redirect-proxy /);

    const echo = net.createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const upstream = `127.0.0.1:${(echo.address() as net.AddressInfo).port}`;
    const proxy = spawn('node', [join(app, 'node_modules', '.bin', 'wfp-redirect-proxy'), '--listen', '127.0.0.1:0', '--upstream', upstream], { env: bareEnv, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let stderr = '';
      const port = await new Promise<number>((resolve, reject) => {
        proxy.stderr.on('data', (data) => {
          stderr += data;
          const match = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
          if (match) resolve(Number(match[1]));
        });
        proxy.once('exit', (code) => reject(new Error(`the proxy exited (${code}): ${stderr}`)));
      });
      const payload = Buffer.alloc(256 * 1024, 'relay ');
      const client = net.connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      let received = 0;
      await new Promise<void>((resolve, reject) => {
        client.on('data', (data) => {
          chunks.push(data);
          received += data.length;
          if (received >= payload.length) resolve();
        });
        client.once('error', reject);
        client.write(payload);
      });
      client.destroy();
      assert.ok(Buffer.concat(chunks).equals(payload), 'the relayed bytes differ');
    } finally {
      proxy.kill('SIGTERM');
      echo.close();
    }
  });

  it('with its addon file removed: --help and --version still work, and a query says ERR_WFP_ADDON_NOT_FOUND in one line', function () {
    const bare = join(work, 'removed');
    cpSync(app, bare, { recursive: true, verbatimSymlinks: true });
    rmSync(join(bare, 'node_modules', 'wfp-redirect', 'prebuilds', `${process.platform}-${process.arch}`), { recursive: true });
    const help = proxyCli(bare, ['--help']);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Usage: wfp-redirect-proxy /);
    assert.equal(proxyCli(bare, ['--version']).stdout.trim(), JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
    const result = smoke(bare, spawner('node', bareEnv));
    assert.match(String(result.error), /^ERR_WFP_ADDON_NOT_FOUND wfp-redirect: no native addon for /);
    assert.doesNotMatch(String(result.error), /\n/);
  });

  it('without a prebuild for the platform: the install script says what a build needs, and a failed build keeps the working one', function () {
    const dir = join(work, 'rebuild');
    cpSync(app, dir, { recursive: true, verbatimSymlinks: true });
    const pkg = join(dir, 'node_modules', 'wfp-redirect');
    const target = `${process.platform}-${process.arch}`;
    const working = join(pkg, 'build', 'Release', 'wfp_redirect.node');
    mkdirSync(dirname(working), { recursive: true });
    // A build that works (the prebuild's bytes), then no prebuild: the install script must build from source.
    renameSync(join(pkg, 'prebuilds', target, 'wfp_redirect.node'), working);
    const before = readFileSync(working);
    // npm's own node-gyp, as npm hands it to install scripts; with no Python on PATH it fails.
    const nodeGyp = join(dirname(dirname(realpathSync(join(work, 'bin', 'npm')))), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    assert.ok(existsSync(nodeGyp), nodeGyp);
    const run = spawnSync('node', [join(pkg, 'scripts', 'install.js')], { cwd: pkg, env: { ...bareEnv, npm_config_node_gyp: nodeGyp }, encoding: 'utf8', timeout: 120_000 });
    const output = run.stdout + run.stderr;
    assert.equal(run.status, 1, output);
    assert.match(output, new RegExp(`no prebuilt addon for ${target}: building it from source with node-gyp, which needs Python 3 and a C\\+\\+ compiler`));
    assert.match(output, /Node's headers: .* \(this machine's; nothing is downloaded\)|node-gyp will download them/);
    assert.match(output, /building the addon failed .*Install Python 3 and a C\+\+ compiler/);
    assert.ok(existsSync(working) && readFileSync(working).equals(before), 'the failed rebuild took the working build away');
    const result = smoke(dir, spawner('node', bareEnv));
    assert.equal(result.echoed, 'ping over connectRedirected', JSON.stringify(result));
  });

  it('in Windows node.exe under Wine: the tarball\'s win32-x64 addon loads and works', function () {
    const wine = require('../scripts/wine') as {
      missingTools(): string[];
      ensureWine(): void;
      spawnWindows(exe: string, args: string[], env: NodeJS.ProcessEnv, fd: number): ReturnType<typeof spawnSync>;
      stopWineserver(): void;
    };
    const missing = wine.missingTools();
    if (missing.length) {
      console.warn(`    !!! NOT RUN: the Windows check needs ${missing.join(', ')}`);
      this.skip();
    }
    // Wine sees the project folder only (scripts/wine.js mounts it): a copy of the install there.
    const dir = join(root, 'pack-check', 'win32');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dirname(dir), { recursive: true });
    cpSync(app, dir, { recursive: true, verbatimSymlinks: true });
    wine.ensureWine();
    const version = scripts.WIN_VERSIONS[scripts.WIN_VERSIONS.length - 1]!;
    try {
      const exe = scripts.officialNode('win32', version);
      const result = smoke(dir, (args, fd) => wine.spawnWindows(exe, args, {}, fd));
      // Wine has no WFP: the context query fails as a provider without the IOCTL does.
      assert.deepEqual(result, {
        arch: 'x64',
        platform: 'win32',
        build: 'mingw',
        handleType: 'number',
        originalDestination: { code: 'WSAEOPNOTSUPP' },
        echoed: 'ping over connectRedirected',
      });
    } finally {
      wine.stopWineserver();
      rmSync(dirname(dir), { recursive: true, force: true });
    }
  });

  it('in Linux arm64 Node under qemu-user: the tarball\'s linux-arm64 addon loads and works', function () {
    const sysroot = '/usr/aarch64-linux-gnu';
    const qemu = spawnSync('sh', ['-c', 'command -v qemu-aarch64'], { encoding: 'utf8' }).stdout.trim();
    if (!qemu || !existsSync(join(sysroot, 'lib', 'ld-linux-aarch64.so.1'))) {
      console.warn('    !!! NOT RUN: the arm64 check needs qemu-user and libc6-arm64-cross (apt-get install qemu-user libc6-arm64-cross)');
      this.skip();
    }
    const version = scripts.LINUX_VERSIONS[scripts.LINUX_VERSIONS.length - 1]!;
    const node = scripts.officialNode('linux-arm64', version);
    const result = smoke(app, spawner(qemu, { ...bareEnv, QEMU_LD_PREFIX: sysroot }, [node]));
    assert.deepEqual(result, {
      arch: 'arm64',
      platform: 'linux',
      build: 'prebuild',
      handleType: 'number',
      originalDestination: { code: 'ERR_NOT_REDIRECTED' },
      echoed: 'ping over connectRedirected',
    });
  });
});
