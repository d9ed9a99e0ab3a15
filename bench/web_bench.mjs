// web_bench.mjs (make bench-web): in headless Chromium, the cartoongan wasm build against
// TensorFlow.js's wasm backend running the same generator with the same weights, both on
// 2 threads, at 256x256 and 512x512 (a centre crop of a shared photo). It lays out
// build/bench-web/ (the page in bench/web/, the threaded wasm build from build/web, the
// Hayao weights, tfjs from web/node_modules), serves it with `cartoongan serve`
// (cross-origin isolated, so both get threads), and prints a Markdown table for
// BENCHMARKS.md. Env: RUNS (timed runs per size after a warm-up, default 3), SIZES
// (default 256,512), CARTOONGAN_BIN, CHROMIUM.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { startServer, stopServer, CHROMIUM_ARGS } from '../tests/web/e2e.mjs';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const require = createRequire(path.join(repo, 'web/package.json'));
const { chromium } = require('playwright-core');
const out = path.join(repo, 'build/bench-web');
const nm = path.join(repo, 'web/node_modules/@tensorflow');

// Hard links where possible: the server refuses symbolic links that lead outside its root.
function place(src, dst) {
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  fs.rmSync(dst, { force: true });
  try { fs.linkSync(src, dst); } catch { fs.copyFileSync(src, dst); }
}

fs.rmSync(out, { recursive: true, force: true });
for (const f of fs.readdirSync(path.join(repo, 'bench/web'))) place(path.join(repo, 'bench/web', f), path.join(out, f));
for (const f of ['cartoongan_mt.js', 'cartoongan_mt.wasm', 'cartoongan_mt.worker.js'])
  place(path.join(repo, 'build/web', f), path.join(out, f));
place(path.join(repo, 'build/web/weights/hayao.safetensors'), path.join(out, 'weights/hayao.safetensors'));
place(path.join(nm, 'tfjs/dist/tf.min.js'), path.join(out, 'tfjs/tf.min.js'));
place(path.join(nm, 'tfjs-backend-wasm/dist/tf-backend-wasm.min.js'), path.join(out, 'tfjs/tf-backend-wasm.min.js'));
for (const f of fs.readdirSync(path.join(nm, 'tfjs-backend-wasm/wasm-out')))
  if (/\.(wasm|worker\.js)$/.test(f)) place(path.join(nm, 'tfjs-backend-wasm/wasm-out', f), path.join(out, 'tfjs', f));
const photo = path.join(repo, '../shared/data/photos/debian_mate_nature/Aqua.jpg');
place(fs.existsSync(photo) ? photo : path.join(repo, 'tests/data/images/plain.jpg'), path.join(out, 'photo.jpg'));

const server = await startServer([], out);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS, chromiumSandbox: false,
});
let result;
try {
  const page = await browser.newPage();
  // tfjs sizes its default pool from hardwareConcurrency; setThreadsCount(2) decides, but
  // this keeps a 2-thread pool even if that call were ignored
  await page.addInitScript(() => Object.defineProperty(navigator, 'hardwareConcurrency', { get: () => 4 }));
  page.on('console', (m) => console.log(`  [page] ${m.text()}`));
  page.on('response', (r) => { if (r.status() >= 400) console.log(`  [page] HTTP ${r.status()} for ${r.url()}`); });
  page.on('crash', () => console.log('  [page] the page crashed (out of memory?)'));
  const q = `?runs=${process.env.RUNS || 3}&sizes=${process.env.SIZES || '256,512'}`;
  await page.goto(server.url + q);
  await page.waitForFunction(() => window.benchResult, null, { timeout: 1800000, polling: 1000 });
  result = await page.evaluate(() => window.benchResult);
} finally {
  await browser.close();
  stopServer(server);
}
if (result.error) {
  console.error(`web_bench: ${result.error}`);
  process.exit(1);
}
const cpu = os.cpus()[0]?.model || 'unknown CPU';
console.log(`\n${result.ua.match(/Chrome\/[\d.]+/)?.[0] || 'Chromium'} headless, ${cpu}, ${os.cpus().length} cores; ` +
  `both on ${result.threads} threads (tfjs reports ${result.tfThreads}); median of ${result.runs} runs after a warm-up\n`);
console.log('| | ' + Object.keys(result.sizes).map((s) => `${s}x${s}`).join(' | ') + ' |');
console.log('| --- |' + Object.keys(result.sizes).map(() => ' --- |').join(''));
const row = (name, f) => console.log(`| ${name} | ` + Object.values(result.sizes).map(f).join(' | ') + ' |');
row('cartoongan wasm (SIMD128 + threads)', (r) => `**${(r.ours / 1000).toFixed(2)} s**`);
row(`TensorFlow.js ${result.tfVersion} wasm backend (SIMD + threads)`, (r) => `${(r.tfjs / 1000).toFixed(2)} s`);
row('TensorFlow.js / cartoongan', (r) => `${(r.tfjs / r.ours).toFixed(2)}x`);
row('outputs agree (PSNR)', (r) => `${r.psnr.toFixed(1)} dB`);
