#!/usr/bin/env node
// `npm run build:win32` (on Linux): cross-compiles native/ for win32-x64 with
// Debian's mingw-w64 into prebuilds/win32-x64/wfp_redirect.node, which the
// loader picks up on Windows (same sources as binding.gyp's Windows build),
// and the test addons (conformance and socket probe, the lookup-fallback build,
// the native relay with 1 KiB reads, the simulated WFP service; test/native/build-win32/) and the benchmark addon
// (bench/native/build-win32/). `--addon-only` (what `npm pack` uses) skips those.
//
// The addon binds to the host's own exports (Node-API and libuv) through a
// delay-import library made from a .def file that lists exactly the symbols
// the compiled objects import, so the list cannot drift from the code; the
// delay-load hook answers the DLL name "node.exe" with the host executable.
//
// An object is compiled again only when its source, a header it included (the
// compiler's own -MMD list) or its command line changed, and up to one compile
// per core runs at once: the suite, the single executable, the package and the
// benchmarks each call this, and a full build takes 80 s on two cores.
'use strict';
const { execFile, execFileSync } = require('node:child_process');
const { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } = require('node:fs');
const { availableParallelism } = require('node:os');
const { dirname, join, resolve } = require('node:path');

const root = join(__dirname, '..');
const CXX = 'x86_64-w64-mingw32-g++-posix';
const NM = 'x86_64-w64-mingw32-nm';
const DLLTOOL = 'x86_64-w64-mingw32-dlltool';
const OBJDUMP = 'x86_64-w64-mingw32-objdump';

/** Compiled into every artifact: maps the delay-loaded "node.exe" to the host process. */
const DELAY_LOAD_HOOK = 'native/win/mingw_delay_load_hook.cc';

/** What the test addons add to the protocol: the socket probe over the production lookup. */
const SOCKET_PROBE = ['test/native/socket_probe.cc', 'native/js_errors.cc', 'native/socket_lookup.cc', 'native/win/os_socket.cc', 'native/wsa_errors.cc'];

/** The production addon, and the test and benchmark addons the Windows suite and benchmarks also load. */
const ARTIFACTS = [
  {
    output: join(root, 'prebuilds', 'win32-x64', 'wfp_redirect.node'),
    objects: join(root, 'build-win32', 'addon'),
    sources: [
      'native/addon.cc',
      'native/js_args.cc',
      'native/js_errors.cc',
      'native/process_binding.cc',
      'native/relay/relay_binding.cc',
      'native/relay/relay_engine.cc',
      'native/relay/relay_socket_win.cc',
      'native/socket_lookup.cc',
      'native/udp_binding.cc',
      'native/wsa_errors.cc',
      'native/win/os_socket.cc',
      'native/win/owner_pid_table.cc',
      'native/win/redirect_ioctl.cc',
      'native/win/udp_socket.cc',
      'native/no_netfilter/original_destination.cc',
      'native/no_netfilter/socket_mark.cc',
      'native/no_netfilter/udp_tproxy.cc',
      'native/no_netfilter/socket_owner.cc',
    ],
    flags: ['-DWFP_REDIRECT_BUILD="mingw"'],
  },
  {
    output: join(root, 'test', 'native', 'build-win32', 'wfp_conformance.node'),
    objects: join(root, 'build-win32', 'conformance'),
    sources: ['test/native/conformance_addon.cc', ...SOCKET_PROBE],
    flags: ['-I', join(root, 'native')],
  },
  {
    output: join(root, 'test', 'native', 'build-win32', 'wfp_lookup_fallback.node'),
    objects: join(root, 'build-win32', 'lookup-fallback'),
    // The misreading lookup is compiled inside lookup_fallback_addon.cc (see there).
    sources: ['test/native/lookup_fallback_addon.cc', ...SOCKET_PROBE.filter((source) => source !== 'native/socket_lookup.cc')],
    flags: ['-I', join(root, 'native')],
  },
  {
    // The native relay with 1 KiB reads (test/native-relay.test.ts), as test/native/binding.gyp's wfp_relay_small.
    output: join(root, 'test', 'native', 'build-win32', 'wfp_relay_small.node'),
    objects: join(root, 'build-win32', 'relay-small'),
    sources: ['test/native/relay_addon.cc'],
    flags: ['-I', join(root, 'native'), '-DWFP_REDIRECT_RELAY_BUFFER_BYTES=1024', '-DWFP_REDIRECT_RELAY_SPLICE_AFTER=4096', '-Wno-subobject-linkage'],
  },
  {
    // The simulated WFP redirect service the Windows suite puts under the production addon.
    output: join(root, 'test', 'native', 'build-win32', 'wfp_sim.node'),
    objects: join(root, 'build-win32', 'wfp-sim'),
    sources: ['test/native/wfp_sim.cc'],
    flags: [],
  },
  {
    output: join(root, 'bench', 'native', 'build-win32', 'wfp_bench.node'),
    objects: join(root, 'build-win32', 'bench'),
    sources: ['bench/native/bench_addon.cc', 'bench/native/raw_ioctl_win.cc'],
    flags: [],
  },
];

/** The Node headers (with uv.h and uv/win.h) of the Node running this script. */
function nodeIncludeDir() {
  const candidates = [process.env.npm_config_nodedir, dirname(dirname(process.execPath))].filter(Boolean);
  for (const dir of candidates) {
    const include = join(dir, 'include', 'node');
    if (existsSync(join(include, 'node_api.h')) && existsSync(join(include, 'uv', 'win.h'))) return include;
  }
  throw new Error(`build:win32: no Node headers with uv/win.h under ${candidates.join(' or ')}`);
}

function run(command, args) {
  return execFileSync(command, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

/**
 * Refuses a binary that would not load outside node.exe (an ordinary import
 * from "node.exe"), or a production addon that no longer imports
 * WS2_32!WSAIoctl (the simulated WFP service replaces that import).
 */
function checkImports(file, callsWsaIoctl) {
  const dlls = run(OBJDUMP, ['-p', file]).split('\n\tDLL Name: ').slice(1);
  const named = (name) => dlls.find((block) => block.toLowerCase().startsWith(name));
  if (named('node.exe')) throw new Error(`build:win32: ${file} imports from node.exe by name: it would load in node.exe only`);
  if (callsWsaIoctl && !/\bWSAIoctl\b/.test(named('ws2_32.dll') ?? '')) throw new Error(`build:win32: ${file} does not import WSAIoctl from WS2_32.dll`);
}

/** True when `object` was compiled by exactly `args` after its source and every header it included last changed. */
function upToDate(object, args) {
  const [command, deps] = [`${object}.cmd`, object.replace(/\.o$/, '.d')];
  if (![object, command, deps].every((file) => existsSync(file))) return false;
  if (readFileSync(command, 'utf8') !== JSON.stringify(args)) return false;
  const built = statSync(object).mtimeMs;
  // "object: source header ...", lines continued with a backslash.
  const text = readFileSync(deps, 'utf8').replace(/\\\n/g, ' ');
  const inputs = text.slice(text.indexOf(': ') + 2).trim().split(/\s+/);
  return inputs.every((input) => existsSync(resolve(root, input)) && statSync(resolve(root, input)).mtimeMs < built);
}

/** Compiles what is not up to date, up to one compile per core at once. */
async function compile(jobs) {
  const queue = jobs.filter(({ object, args }) => !upToDate(object, args));
  const worker = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const { object, args } = job;
      rmSync(`${object}.cmd`, { force: true });
      await new Promise((done, reject) =>
        execFile(CXX, [...args, '-MMD', '-MF', object.replace(/\.o$/, '.d')], { cwd: root }, (error, stdout, stderr) => {
          process.stderr.write(stderr);
          return error ? reject(new Error(`build:win32: ${CXX} failed for ${object}`)) : done();
        }),
      );
      writeFileSync(`${object}.cmd`, JSON.stringify(args));
    }
  };
  await Promise.all(Array.from({ length: availableParallelism() }, worker));
}

async function build(artifact, commonFlags) {
  mkdirSync(artifact.objects, { recursive: true });
  mkdirSync(dirname(artifact.output), { recursive: true });
  const jobs = [...artifact.sources, DELAY_LOAD_HOOK].map((source) => {
    const object = join(artifact.objects, source.replace(/[\\/]/g, '_').replace(/\.cc$/, '.o'));
    return { object, args: [...commonFlags, ...artifact.flags, '-c', source, '-o', object] };
  });
  await compile(jobs);
  const objects = jobs.map(({ object }) => object);

  // Everything the objects import from node.exe.
  const imported = new Set();
  for (const line of run(NM, ['-u', ...objects]).split('\n')) {
    const match = /\b(?:__imp_)?((?:napi|node_api|uv)_\w+)$/.exec(line.trim());
    if (match) imported.add(match[1]);
  }
  const def = join(artifact.objects, 'node.def');
  writeFileSync(def, ['NAME node.exe', 'EXPORTS', ...[...imported].sort()].join('\n') + '\n');
  // Delay-loaded, and resolved by native/win/mingw_delay_load_hook.cc from the
  // host executable, whatever its name (node.exe, a renamed node.exe, Electron).
  const importLib = join(artifact.objects, 'libnode-delay.a');
  run(DLLTOOL, ['-d', def, '--output-delaylib', importLib]);

  run(CXX, ['-shared', '-s', '-o', artifact.output, ...objects, importLib, '-static-libgcc', '-static-libstdc++', '-static', '-lws2_32', '-liphlpapi']);
  checkImports(artifact.output, artifact === ARTIFACTS[0]);
  console.log(`build:win32: ${artifact.output} (${imported.size} symbols delay-loaded from the host executable)`);
}

async function main() {
  for (const tool of [CXX, NM, DLLTOOL, OBJDUMP]) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
    } catch {
      console.error(`build:win32: ${tool} not found. Install it with:\n  apt-get install g++-mingw-w64-x86-64-posix binutils-mingw-w64-x86-64`);
      process.exit(1);
    }
  }
  const commonFlags = [
    '-std=c++17', '-O2', '-Wall', '-Wextra',
    '-DNAPI_VERSION=8', '-DNAPI_DISABLE_CPP_EXCEPTIONS',
    '-DBUILDING_NODE_EXTENSION', '-DUSING_UV_SHARED', '-DWIN32_LEAN_AND_MEAN', '-D_WIN32_WINNT=0x0602',
    '-I', nodeIncludeDir(), '-I', dirname(require.resolve('node-addon-api/napi.h')),
  ];
  const only = process.argv.includes('--addon-only') ? ARTIFACTS.slice(0, 1) : ARTIFACTS;
  for (const artifact of only) await build(artifact, commonFlags);
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
