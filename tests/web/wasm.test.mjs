// wasm.test.mjs: the WebAssembly engine alone, in node (node --test): the single-threaded
// SIMD build (build/web/cartoongan_st.js) loads the weights from memory and must give the
// native CLI's pixels; it falls back to one thread when threads cannot start; fp16 weights
// load; bad weights are refused with a message; progress is reported and can cancel; the
// light styles' files (architecture cartoongan-light, fp32 and fp16) run and give the
// native CLI's pixels too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { decodePng, psnr } from './png.mjs';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const web = process.env.WEB_ROOT || path.join(repo, 'build/web');
const bin = process.env.CARTOONGAN_BIN || path.join(repo, 'build/cartoongan');
// The build is a CommonJS script, but the repository's package.json says "type": "module",
// so require() would take it for ESM: evaluate it as CommonJS by hand.
const require = createRequire(import.meta.url);
const stJs = path.join(web, 'cartoongan_st.js'), mod = { exports: {} };
new Function('module', 'exports', 'require', '__filename', '__dirname', fs.readFileSync(stJs, 'utf8'))(
  mod, mod.exports, require, stJs, web);
const createCartoonGAN = mod.exports;
const ST = { OK: 0, FORMAT: 3, WEIGHTS: 4, CANCELLED: 7 };

// Emscripten 3.1.6 fetches the wasm with fetch() under node 18+, which cannot read
// files: hand it the bytes.
const engine = await createCartoonGAN({ wasmBinary: fs.readFileSync(path.join(web, 'cartoongan_st.wasm')) });

function copyIn(bytes) {
  const p = engine._cgw_alloc(bytes.length);
  engine.HEAPU8.set(bytes, p);
  return p;
}
const lastError = () => engine.UTF8ToString(engine._cgw_last_error());

function load(bytes, threads = 1, name = 'test weights') {
  const p = copyIn(bytes), np = copyIn(Buffer.from(name + '\0'));
  const st = engine._cgw_load(p, bytes.length, np, threads);
  engine._cgw_free(p);
  engine._cgw_free(np);
  return st;
}

function stylize(img) {
  const n = img.width * img.height * 3;
  const p = copyIn(img.rgb);
  const st = engine._cgw_stylize(p, p, img.width, img.height);
  const out = engine.HEAPU8.slice(p, p + n);
  engine._cgw_free(p);
  return { st, out };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cg_wasm_test_'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const photo = path.join(repo, 'tests/data/model/input_37x29.png');
execFileSync(bin, ['cartoonize', '--styles', 'hayao', '--keep-original-size', '--skip-comparison', '--quiet',
  '--output-dir', tmp, photo]);
const input = decodePng(fs.readFileSync(photo));
const native = decodePng(fs.readFileSync(path.join(tmp, 'hayao', path.basename(photo))));
const weights = fs.readFileSync(path.join(web, 'weights/hayao.safetensors'));

test('the wasm kernel is the one chosen', () => {
  assert.equal(engine.UTF8ToString(engine._cgw_kernel()), 'wasm');
});

test('weights from memory, and the native CLI\'s pixels (37x29, padded and cropped)', () => {
  assert.equal(load(weights), ST.OK, lastError());
  const { st, out } = stylize(input);
  assert.equal(st, ST.OK, lastError());
  const db = psnr(out, native.rgb);
  assert.ok(db >= 45, `PSNR ${db.toFixed(1)} dB`);
});

test('without pthreads, asking for 2 threads runs on 1 with the same result', () => {
  assert.equal(load(weights, 2), ST.OK, lastError());
  const { st, out } = stylize(input);
  assert.equal(st, ST.OK, lastError());
  assert.equal(engine._cgw_threads_used(), 1);
  assert.ok(psnr(out, native.rgb) >= 45);
});

test('fp16 weights load, widened to float32, close to the fp32 output', () => {
  const f16 = fs.readFileSync(path.join(web, 'weights/hayao.f16.safetensors'));
  assert.ok(f16.length < weights.length * 0.51);
  assert.equal(load(f16), ST.OK, lastError());
  const { st, out } = stylize(input);
  assert.equal(st, ST.OK);
  const db = psnr(out, native.rgb);
  assert.ok(db >= 40, `PSNR vs fp32 ${db.toFixed(1)} dB`);
});

test('damaged weights are refused with a message naming them', () => {
  assert.equal(load(weights.subarray(0, 1000), 1, 'cut.safetensors'), ST.FORMAT);
  assert.match(lastError(), /^cut\.safetensors: .*(truncated|header length)/);
  assert.equal(load(Buffer.from('not weights at all'), 1, 'text'), ST.FORMAT);
  const bad = Buffer.from(weights);
  bad.write('X', bad.indexOf('conv02_1.weight'), 'latin1');
  assert.equal(load(bad, 1, 'renamed'), ST.WEIGHTS);
  assert.match(lastError(), /unexpected tensor 'Xonv02_1.weight'/);
  assert.equal(engine._cgw_stylize(0, 0, 1, 1) !== ST.OK, true); // no model loaded now
});

test('progress rises to 1, and returning true cancels', () => {
  assert.equal(load(weights), ST.OK, lastError());
  const seen = [];
  engine.onProgress = (f) => { seen.push(f); return false; };
  assert.equal(stylize(input).st, ST.OK);
  assert.ok(seen.length > 5 && seen.every((f, i) => i === 0 || f >= seen[i - 1]), seen.join(','));
  assert.ok(Math.abs(seen[seen.length - 1] - 1) < 1e-6);
  engine.onProgress = (f) => f > 0.3;
  assert.equal(stylize(input).st, ST.CANCELLED);
  engine.onProgress = null;
});

// The light generator (src/model/light.c) on wasm: its GEMM goes through the SIMD128
// kernel and final_conv through the portable direct convolution (the AVX-512 one is x86
// only), so it is checked against the native CLI's output like the full model.
const lightStyles = ['light_shinkai', 'light_paprika'];
execFileSync(bin, ['cartoonize', '--styles', lightStyles.join(','), '--keep-original-size', '--skip-comparison',
  '--quiet', '--output-dir', tmp, photo]);
const nativeLight = Object.fromEntries(lightStyles.map((s) => [s, decodePng(fs.readFileSync(path.join(tmp, s, path.basename(photo))))]));

for (const style of lightStyles) {
  test(`${style}: the light weights from memory give the native CLI's pixels`, () => {
    const light = fs.readFileSync(path.join(web, `weights/${style}.safetensors`));
    assert.ok(light.length < weights.length / 10, `${light.length} bytes`);
    assert.equal(load(light, 1, `${style}.safetensors`), ST.OK, lastError());
    const { st, out } = stylize(input);
    assert.equal(st, ST.OK, lastError());
    const db = psnr(out, nativeLight[style].rgb);
    assert.ok(db >= 45, `PSNR ${db.toFixed(1)} dB`); // identical when measured
    // a different network from the full model: far from the full Hayao output
    assert.ok(psnr(out, native.rgb) < 30, `PSNR vs hayao ${psnr(out, native.rgb).toFixed(1)} dB`); // 13 dB measured
  });
}

test('light fp16 weights load, close to the fp32 output', () => {
  const f32 = fs.readFileSync(path.join(web, 'weights/light_paprika.safetensors'));
  const f16 = fs.readFileSync(path.join(web, 'weights/light_paprika.f16.safetensors'));
  assert.ok(f16.length < f32.length * 0.51, `${f16.length} of ${f32.length} bytes`);
  assert.equal(load(f16, 1, 'light_paprika.f16.safetensors'), ST.OK, lastError());
  const { st, out } = stylize(input);
  assert.equal(st, ST.OK, lastError());
  const db = psnr(out, nativeLight.light_paprika.rgb);
  assert.ok(db >= 40, `PSNR vs fp32 ${db.toFixed(1)} dB`); // 64 dB measured
});

test('the Lanczos resize is the CLI\'s: a 64x48 photo capped to 32 px high equals --max-height 32', () => {
  const big = decodePng(fs.readFileSync(path.join(repo, 'tests/data/model/input_64x48.png')));
  const out = path.join(tmp, 'capped');
  execFileSync(bin, ['cartoonize', '--styles', 'hayao', '--max-height', '32', '--skip-comparison', '--quiet',
    '--output-dir', out, path.join(repo, 'tests/data/model/input_64x48.png')]);
  const want = decodePng(fs.readFileSync(path.join(out, 'hayao/input_64x48.png')));
  assert.equal(want.width, 43);
  assert.equal(load(weights), ST.OK, lastError()); // the tests before may have left another style
  const src = copyIn(big.rgb), dst = engine._cgw_alloc(43 * 32 * 3);
  engine._cgw_resize(dst, 43, 32, src, 64, 48);
  const st = engine._cgw_stylize(dst, dst, 43, 32);
  const got = engine.HEAPU8.slice(dst, dst + 43 * 32 * 3);
  engine._cgw_free(src);
  engine._cgw_free(dst);
  assert.equal(st, ST.OK);
  const db = psnr(got, want.rgb);
  assert.ok(db >= 45, `PSNR ${db.toFixed(1)} dB`);
});
