// Build every JavaScript plugin under plugins/js into a WebAssembly
// component, with componentize-js (SpiderMonkey in a component, the plugin
// module snapshotted into it by Wizer).
//
//   node build.mjs <out-dir> [plugin ...]
//
// A plugin is a folder here with an `index.js` ES module; it becomes
// `<out-dir>/<folder>.wasm`. The world comes from the contract interface the
// module exports (`export const adapter = …` → `adapter-plugin`,
// `dialect` → `dialect-plugin`, `transformer` → `transformer-plugin`).
// Files are written atomically (a hidden temporary file, then a rename), so
// a gateway watching the folder never loads half a component. A component
// whose sources, contract and toolchain did not change since the last build
// is not rebuilt (componentizing takes 4–15 s).
//
// This uses componentize-js's library API: the jco CLI (`jco componentize`)
// fails on our WIT folder ("failed to get path metadata ... os error 44").
// The library fails the same way when the WASI shim its splicer runs on,
// @bytecodealliance/preview2-shim, resolves to 0.26 (jco's); 0.17.9, the
// line componentize-js 0.23 is developed against, works: package.json pins it.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { componentize } from '@bytecodealliance/componentize-js';
import { componentWit } from '@bytecodealliance/jco';

// The splicer that generates componentize-js's glue between the component
// ABI and JavaScript (by file: the package exports only its entry point).
// The same module instance componentize() uses, so wrapping it below
// applies to every build.
import { splicer } from './node_modules/@bytecodealliance/componentize-js/lib/spidermonkey-embedding-splicer.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The contract this build targets. */
const WIT = resolve(HERE, '../../wit/plugin@0.1.0');
/** Plugins get no WASI: no console, randomness, clocks or HTTP. With all
 * of these off the component imports only our own interfaces. */
const DISABLED_FEATURES = ['stdio', 'random', 'clocks', 'http', 'fetch-event'];
/** The world for each exported contract interface. */
const WORLDS = {
  adapter: 'adapter-plugin',
  dialect: 'dialect-plugin',
  transformer: 'transformer-plugin',
};

// Returning a string (every `json` a plugin returns is one) goes through
// the glue's `_utf8AllocateAndEncode`, which first measures the string's
// UTF-8 length with a JavaScript loop over its characters. Inside
// WebAssembly SpiderMonkey has no JIT, so that loop costs about 150 ns per
// character: 40 ms for a 256 KiB response body, most of the gateway's
// 50 ms call deadline, and 0.6 ms for a 4 KiB one. The build swaps the loop
// for TextEncoder.encode (native code, the same bytes: lone surrogates
// become U+FFFD either way), which makes that 256 KiB answer about 3 ms.
// The toolchain is pinned (package-lock.json); if a new version generates
// different glue the pattern is not found and the build says so.
const SLOW_UTF8_LENGTH =
  /( {2}if \(s\.length === 0\) \{ return \{ ptr: 1, len: 0 \}; \}\n)[\s\S]*?\n {2}let len = 0;\n {2}let codepoints = 0;\n[\s\S]*?\n {2}return res;\n/;
const FAST_UTF8_LENGTH = `$1  const bytes = TEXT_ENCODER_UTF8.encode(s);
  const len = bytes.length;
  const ptr = realloc(0, 0, 1, len);
  new Uint8Array(memory.buffer, ptr, len).set(bytes);
  return { ptr, len, codepoints: 0 };
`;
const spliceBindings = splicer.spliceBindings;
splicer.spliceBindings = (...args) => {
  const spliced = spliceBindings(...args);
  if (!SLOW_UTF8_LENGTH.test(spliced.jsBindings)) {
    throw new Error(
      'componentize-js generated unexpected string glue (_utf8AllocateAndEncode); ' +
        'update SLOW_UTF8_LENGTH in build.mjs for this toolchain version',
    );
  }
  spliced.jsBindings = spliced.jsBindings.replace(SLOW_UTF8_LENGTH, FAST_UTF8_LENGTH);
  return spliced;
};

function usage(message) {
  console.error(`${message}\nusage: node build.mjs <out-dir> [plugin ...]`);
  process.exit(2);
}

/** The plugin folders: every folder here with an `index.js`. */
function pluginFolders() {
  return readdirSync(HERE, { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name !== 'node_modules' && !e.name.startsWith('.'))
    .filter((e) => existsSync(join(HERE, e.name, 'index.js')))
    .map((e) => e.name)
    .sort();
}

/** The world of a plugin, from the contract interface its module exports. */
function worldOf(name, source) {
  const exported = Object.keys(WORLDS).filter((iface) =>
    new RegExp(`^export\\s+(const|let|var)\\s+${iface}\\b`, 'm').test(source),
  );
  if (exported.length !== 1) {
    throw new Error(
      `${name}/index.js must export exactly one of ${Object.keys(WORLDS).join(', ')} ` +
        `(\`export const adapter = { … }\`); it exports ${exported.join(', ') || 'none'}`,
    );
  }
  return WORLDS[exported[0]];
}

/** Every file of a folder (recursively) but tests, sorted, for the build
 * key. */
function files(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]))
    .filter((file) => !/\.test\.[cm]?js$/.test(file))
    .sort();
}

/** What a component is built from: the plugin's files, the contract, this
 * script and the toolchain's version. Equal keys, equal components. */
function buildKey(dir) {
  const hash = createHash('sha256');
  const toolchain = JSON.parse(
    readFileSync(join(HERE, 'node_modules/@bytecodealliance/componentize-js/package.json'), 'utf8'),
  ).version;
  hash.update(`componentize-js ${toolchain}\0`);
  for (const file of [...files(dir), ...files(WIT), fileURLToPath(import.meta.url)]) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(file));
  }
  return hash.digest('hex');
}

/** Write `bytes` to `path` atomically. */
async function install(path, bytes) {
  const tmp = join(dirname(path), `.${path.split('/').pop()}.tmp`);
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

/** SHA-256 of a file, hex. */
function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

async function build(name, outDir) {
  const dir = join(HERE, name);
  const sourcePath = join(dir, 'index.js');
  const out = join(outDir, `${name}.wasm`);
  // The last build's key and the hash of what it wrote: when both still
  // match, the component in `out` is what this build would write.
  const stamp = join(HERE, 'node_modules/.build', `${name}.json`);
  const key = buildKey(dir);
  if (existsSync(out) && existsSync(stamp)) {
    const last = JSON.parse(readFileSync(stamp, 'utf8'));
    if (last.key === key && last.output === sha256(out)) {
      console.error(`${name}: up to date (${out})`);
      return;
    }
  }
  const worldName = worldOf(name, readFileSync(sourcePath, 'utf8'));
  const started = Date.now();
  const { component } = await componentize({
    sourcePath,
    witPath: WIT,
    worldName,
    disableFeatures: DISABLED_FEATURES,
  });
  // Anything imported beyond the contract's own interfaces would trap in
  // the gateway: refuse it here rather than at the first request.
  const wit = await componentWit(component);
  const foreign = [...wit.matchAll(/^\s*import\s+([^;]+);/gm)]
    .map((m) => m[1].trim())
    .filter((i) => !i.startsWith('llm-orchestrator:plugin/'));
  if (foreign.length > 0) {
    throw new Error(`the component imports ${foreign.join(', ')}; plugins get no WASI`);
  }
  await install(out, component);
  await mkdir(dirname(stamp), { recursive: true });
  await writeFile(stamp, JSON.stringify({ key, output: sha256(out) }));
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const mib = (statSync(out).size / (1 << 20)).toFixed(1);
  console.error(`${name}: ${worldName} → ${out} (${mib} MiB, ${seconds} s)`);
}

const [outArg, ...only] = process.argv.slice(2);
if (!outArg) usage('missing the output folder');
const outDir = resolve(outArg);
await mkdir(outDir, { recursive: true });
const all = pluginFolders();
const unknown = only.filter((n) => !all.includes(n));
if (unknown.length > 0) usage(`no such plugin: ${unknown.join(', ')} (plugins: ${all.join(', ')})`);
for (const name of only.length > 0 ? only : all) {
  try {
    await build(name, outDir);
  } catch (error) {
    await rm(join(outDir, `.${name}.wasm.tmp`), { force: true });
    console.error(`${name}: ${error.message ?? error}`);
    process.exitCode = 1;
  }
}
