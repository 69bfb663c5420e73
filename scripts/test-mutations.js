#!/usr/bin/env node
// `npm run test:mutations [-- --short] [-- <name> ...]`: proves that the tests
// can fail. Applies each mutation of test/mutations.ts to the working tree,
// rebuilds what it touched, runs the test files it names, and requires them to
// FAIL; then puts the file back and rebuilds. One line per mutation:
//   === MUTATION <name>: killed (<what the run showed>)
//   === MUTATION <name>: SURVIVED (<...>)      the tests did not notice
//   === MUTATION <name>: STALE (<why>)         the text to mutate is gone
//   === MUTATION <name>: BROKEN (<why>)        the mutant does not build
// and a last line `test:mutations: N killed, N survived, N stale or broken`.
// Exits 1 unless every mutation was killed. The files to mutate must be unmodified in git:
// the original is what gets restored.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const { readFileSync, writeFileSync } = require('node:fs');
const { dirname, join } = require('node:path');
const { root, cache, LINUX_VERSIONS, RENAMED_HOST, WIN_VERSIONS, officialNode, renamedNode } = require('./node-builds');
const { MOCHA, RUN_TIMEOUT_MS, runLogged, verdictOf } = require('./suite');
const { exitWhenWritten } = require('./exit');

// npm names its own node-gyp to scripts; run directly, this script looks beside npm.
const NODE_GYP = process.env.npm_config_node_gyp ?? join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
// The production sources the test addons (test/native/) compile too.
const TEST_ADDON_SOURCES = [
  'native/redirect_protocol.h', 'native/wsa_errors.cc', 'native/wsa_errors.h', 'native/js_errors.cc', 'native/js_errors.h',
  'native/socket_lookup.cc', 'native/socket_lookup.h', 'native/os_socket.h', 'native/posix/os_socket.cc', 'native/sockaddr_endpoint.h',
  'native/relay/relay_engine.cc', 'native/relay/relay_engine.h', 'native/relay/relay_epoll_set.cc', 'native/relay/relay_epoll_set.h', 'native/relay/relay_binding.cc', 'native/relay/relay_binding.h',
  'native/original_destination.h', 'native/linux/original_destination.cc',
];

// The test addons (test/native/binding.gyp targets) each spec loads. A native
// mutant of a file they compile too is built into those of its specs only:
// the others are not loaded by the run, and building each (two of them with
// the sanitizers) twice per mutant was most of a native mutant's time. A spec
// that comes to load a test addon must be named here, or its mutants will not
// reach that addon (they would SURVIVE, loudly, not pass unseen).
const WITH_CONFORMANCE = ['wfp_conformance', 'wfp_lookup_fallback'];
const TEST_ADDONS_BY_SPEC = {
  'relay-asan.test.js': ['wfp_relay_asan'],
  'native-relay.test.js': ['wfp_relay_small'],
  'udp-hostile.test.js': ['wfp_udp_probe'],
  'loader.test.js': ['wfp_conformance'],
  ...Object.fromEntries(
    ['bad-input', 'conformance-fuzz', 'conformance', 'connect', 'reliability', 'socket-handle', 'transparent-proxy', 'wfp-errors'].map((spec) => [`${spec}.test.js`, WITH_CONFORMANCE]),
  ),
};

function run(file, args) {
  const result = spawnSync(file, args, { cwd: root, encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`${[file, ...args].join(' ')} failed (${result.error?.message ?? `exit ${result.status}`}):\n${result.stdout}${result.stderr}`);
  }
}

// A TypeScript mutant is compiled alone (ts.transpileModule with the project's
// options) into the one JavaScript file tsc made of it, and that file's bytes
// are put back afterwards: two whole-project tsc runs per mutant were most of
// the short set's time (about 10 s each on CI's two cores). Alone means not
// type-checked: a mutant that only tsc would refuse still runs, and is judged
// by the tests like any other.
const TS_OUTPUTS = { 'lib/': ['tsconfig.json', 'dist/'], 'test/': ['test/tsconfig.json', 'dist-test/'] };

/** For a TypeScript source: its tsconfig and the JavaScript (and declarations) file tsc emits for it; else undefined. */
function emittedFrom(file) {
  const prefix = Object.keys(TS_OUTPUTS).find((start) => file.startsWith(start) && file.endsWith('.ts'));
  if (!prefix) return undefined;
  const [tsconfig, outDir] = TS_OUTPUTS[prefix];
  const output = join(root, outDir, file.slice(prefix.length).replace(/\.ts$/, '.js'));
  return { tsconfig, output, declarations: output.replace(/\.js$/, '.d.ts') };
}

/** The compiler options and files of `tsconfig` (a path from the root). */
function parsedConfig(ts, tsconfig) {
  return ts.getParsedCommandLineOfConfigFile(join(root, tsconfig), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
}

/** Writes `text` (the source of `file`) compiled alone over its emitted JavaScript; throws on a syntax error. */
function transpileInto(file, text) {
  const ts = require('typescript');
  const { tsconfig, output } = emittedFrom(file);
  const compilerOptions = { ...parsedConfig(ts, tsconfig).options, sourceMap: false, declaration: false };
  const { outputText, diagnostics } = ts.transpileModule(text, { compilerOptions, fileName: join(root, file), reportDiagnostics: true });
  if (diagnostics?.length) throw new Error(ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' }));
  writeFileSync(output, outputText);
}

/**
 * For a lib/ source: writes the declarations the whole project emits for it
 * with `text` in its place over its emitted .d.ts, which the types spec
 * compiles against (transpileInto writes JavaScript only).
 */
function declarationsInto(file, text) {
  const ts = require('typescript');
  const { tsconfig, declarations } = emittedFrom(file);
  const config = parsedConfig(ts, tsconfig);
  const options = { ...config.options, declaration: true, emitDeclarationOnly: true, declarationMap: false, noEmit: false };
  const host = ts.createCompilerHost(options);
  const source = join(root, file);
  const getSourceFile = host.getSourceFile;
  host.getSourceFile = (name, language, ...rest) => (name === source ? ts.createSourceFile(name, text, language) : getSourceFile(name, language, ...rest));
  // Emitted even where the project's own code no longer type-checks against the mutant: the spec judges what a consumer meets.
  const program = ts.createProgram(config.fileNames, options, host);
  let written = false;
  program.emit(program.getSourceFile(source), (name, data) => {
    if (name === declarations) (writeFileSync(name, data), (written = true));
  }, undefined, true);
  if (!written) throw new Error(`no declarations were emitted for ${file}`);
}

/** Rebuilds what `file` goes into, for the mutation's runtime and specs (TypeScript sources: see transpileInto). */
function rebuild(file, { runtime, specs }) {
  if (file === 'scripts/build-win32.js') return run(process.execPath, [join(__dirname, 'build-win32.js')]);
  // README.md: test/readme-recipe.test.ts reads its commands as they are.
  if (file === 'README.md') return;
  // The other scripts are plain JavaScript, run as they are.
  if (file.startsWith('scripts/')) return;
  if (file.startsWith('native/')) {
    if (runtime.startsWith('win32')) return run(process.execPath, [join(__dirname, 'build-win32.js')]);
    run(process.execPath, [NODE_GYP, 'build']);
    const targets = [...new Set(specs.flatMap((spec) => TEST_ADDONS_BY_SPEC[spec] ?? []))];
    // gyp's Makefile names each target; node-gyp would build them all.
    if (TEST_ADDON_SOURCES.includes(file) && targets.length) {
      run('make', ['-C', join(root, 'test', 'native', 'build'), 'BUILDTYPE=Release', `-j${require('node:os').availableParallelism()}`, ...targets]);
    }
    return;
  }
  throw new Error(`test:mutations: no rule to rebuild ${file}`);
}

// A mutant's run still there this long after its summary is killed (the suite's
// own bound is 60 s): mutants that break a query's answer leave it pending, and
// waiting a minute for each adds up. A run killed so has not passed either way.
const MUTANT_EXIT_MS = 20_000;

/** Runs the mutation's test files; returns the verdict (ok: they passed). */
function runSpecs(mutation) {
  // --bail: one failing test kills the mutant; the rest of its specs would only take time (a timeout each).
  const args = [MOCHA, '--no-config', '--reporter', 'spec', '--timeout', '20000', '--bail', ...mutation.specs.map((spec) => `dist-test/${spec}`)];
  const log = join(cache, 'mutations', `${mutation.name}.log`);
  const { result, text } = runLogged(
    log,
    (fd) => {
      if (mutation.runtime.startsWith('win32')) {
        const { spawnWindows } = require('./wine');
        const newest = WIN_VERSIONS[WIN_VERSIONS.length - 1];
        if (mutation.runtime === 'win32-renamed') {
          return spawnWindows(renamedNode(newest), args, { WFP_REDIRECT_EXPECT_BUILD: 'mingw', WFP_REDIRECT_EXPECT_HOST: RENAMED_HOST }, fd);
        }
        return spawnWindows(officialNode('win32', newest), args, { WFP_REDIRECT_EXPECT_BUILD: 'mingw' }, fd);
      }
      return spawnSync(officialNode('linux', LINUX_VERSIONS[LINUX_VERSIONS.length - 1]), args, { cwd: root, stdio: ['ignore', fd, fd], timeout: RUN_TIMEOUT_MS });
    },
    false,
    MUTANT_EXIT_MS,
  );
  return { ...verdictOf(result, text), log, interrupted: result.signal === 'SIGINT' };
}

function occurrences(text, find) {
  let count = 0;
  for (let at = text.indexOf(find); at !== -1; at = text.indexOf(find, at + 1)) count++;
  return count;
}

// The file being mutated, to put back if the run is interrupted.
let mutated;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (mutated) writeFileSync(mutated.path, mutated.original);
    if (mutated?.output) writeFileSync(mutated.output.path, mutated.output.bytes);
    if (mutated?.declarations) writeFileSync(mutated.declarations.path, mutated.declarations.bytes);
    const build = mutated?.output ? `its JavaScript (${mutated.output.path}) too` : 'its build not';
    console.error(`test:mutations: interrupted; ${mutated ? `${mutated.path} restored, ${build}` : 'nothing was mutated'}`);
    process.exit(130);
  });
}

function check(mutation) {
  const path = join(root, mutation.file);
  const original = readFileSync(path, 'utf8');
  let text = original;
  for (const { find, replace } of mutation.edits) {
    const found = occurrences(text, find);
    if (found !== 1) return { verdict: 'STALE', why: `${JSON.stringify(find.trim())} occurs ${found} times in ${mutation.file}, not once` };
    text = text.replace(find, () => replace);
  }
  const emitted = emittedFrom(mutation.file);
  // The types spec reads a lib/ source's declarations, not its JavaScript.
  const typed = emitted && mutation.file.startsWith('lib/') && mutation.specs.includes('types.test.js');
  const declarations = typed ? { path: emitted.declarations, bytes: readFileSync(emitted.declarations) } : undefined;
  mutated = { path, original, output: emitted && { path: emitted.output, bytes: readFileSync(emitted.output) }, declarations };
  writeFileSync(path, text);
  try {
    try {
      if (emitted) transpileInto(mutation.file, text);
      else rebuild(mutation.file, mutation);
      if (typed) declarationsInto(mutation.file, text);
    } catch (error) {
      return { verdict: 'BROKEN', why: `the mutant does not build: ${error.message}` };
    }
    const outcome = runSpecs(mutation);
    // Ctrl+C reaches the test process; this one, blocked in spawnSync, only sees how it ended.
    if (outcome.interrupted) return { verdict: 'INTERRUPTED', why: 'interrupted (Ctrl+C)' };
    return { verdict: outcome.ok ? 'SURVIVED' : 'killed', why: `${mutation.specs.join(', ')} in ${mutation.runtime}: ${outcome.line}; log ${outcome.log}` };
  } finally {
    writeFileSync(path, original);
    if (mutated.output) writeFileSync(mutated.output.path, mutated.output.bytes);
    else rebuild(mutation.file, mutation);
    if (mutated.declarations) writeFileSync(mutated.declarations.path, mutated.declarations.bytes);
    mutated = undefined;
  }
}

function main() {
  const args = process.argv.slice(2);
  const short = args.includes('--short');
  const names = args.filter((arg) => !arg.startsWith('--'));
  const { MUTATIONS } = require(join(root, 'dist-test', 'mutations.js'));
  const unknown = names.filter((name) => !MUTATIONS.some((m) => m.name === name));
  if (unknown.length) throw new Error(`test:mutations: no mutation named ${unknown.join(', ')}`);
  const chosen = MUTATIONS.filter((m) => (names.length ? names.includes(m.name) : !short || m.short));

  const dirty = [...new Set(chosen.map((m) => m.file))].filter(
    (file) => execFileSync('git', ['status', '--porcelain', '--', file], { cwd: root, encoding: 'utf8' }).trim() !== '',
  );
  if (dirty.length) {
    console.error(`test:mutations: commit or stash your changes to ${dirty.join(', ')} first; the run restores them from what it reads`);
    process.exit(1);
  }

  const wine = chosen.some((m) => m.runtime.startsWith('win32')) ? require('./wine') : undefined;
  if (wine) {
    const missing = wine.missingTools();
    if (missing.length) throw new Error(`test:mutations: the win32 mutations need ${missing.join(', ')}. ${wine.INSTALL_HINT}`);
    wine.ensureWine();
  }
  const counts = { killed: 0, SURVIVED: 0, STALE: 0, BROKEN: 0 };
  try {
    for (const mutation of chosen) {
      const { verdict, why } = check(mutation);
      if (verdict === 'INTERRUPTED') {
        console.error(`test:mutations: interrupted during ${mutation.name}; ${mutation.file} restored and rebuilt`);
        process.exit(130);
      }
      console.log(`=== MUTATION ${mutation.name}: ${verdict} (${mutation.intent}; ${why})`);
      counts[verdict]++;
    }
  } finally {
    wine?.stopWineserver();
  }
  console.log(`test:mutations: ${counts.killed} killed, ${counts.SURVIVED} survived, ${counts.STALE + counts.BROKEN} stale or broken`);
  exitWhenWritten(counts.killed === chosen.length ? 0 : 1);
}

main();
