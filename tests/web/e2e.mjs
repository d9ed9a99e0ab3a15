// e2e.mjs: the browser app end to end in real headless Chromium (playwright-core driving
// Debian's /usr/bin/chromium). For each of two servers, `cartoongan serve` cross-origin
// isolated (the page uses the threaded build) and `--no-isolation` (the single-threaded
// fallback), it uploads a photo, picks each style (the four full ones and the two light
// ones), waits for the result and compares its pixels with the native CLI's output for the
// same photo (PSNR >= 45 dB), and checks the failure paths a user can meet: a file that is
// no image, an image over the pixel limit, a weights download that fails (error state,
// then Retry), and a path outside the app. It also times a light style on a photo the page
// scales to 720x450, on 2 threads (printed; the goal is under 1.5 s).
//
// Usage: node tests/web/e2e.mjs                       (run by tests/web/run.sh)
//        node tests/web/e2e.mjs --screenshot FILE.png PHOTO
//        node tests/web/e2e.mjs --time PHOTO [STYLE...]   the app's times on 2 threads,
//          cross-origin isolated, the photo capped to 720 px as the page does; medians of
//          RUNS (default 3) after a warm-up; STYLEs default to shinkai light_shinkai
//          paprika light_paprika (for BENCHMARKS.md)
// Env: CARTOONGAN_BIN (default build/cartoongan), CARTOONGAN_WEIGHTS, WEB_ROOT (build/web).
// Prints "ok"/"FAIL" lines and ends with "e2e: P passed, F failed".
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const require = createRequire(path.join(repo, 'web/package.json'));
const { chromium } = require('playwright-core');

const BIN = process.env.CARTOONGAN_BIN || path.join(repo, 'build/cartoongan');
const ROOT = process.env.WEB_ROOT || path.join(repo, 'build/web');
const STYLES = ['shinkai', 'hayao', 'hosoda', 'paprika'];
const LIGHT_STYLES = ['light_shinkai', 'light_paprika'];
const PHOTO = path.join(repo, 'tests/data/model/input_64x48.png');
const ODD_PHOTO = path.join(repo, 'tests/data/model/input_37x29.png');
const MIN_PSNR = 45;
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let passed = 0, failed = 0;
function check(cond, what, detail = '') {
  if (cond) { passed++; console.log(`ok   ${what}${detail ? ` (${detail})` : ''}`); }
  else { failed++; console.log(`FAIL ${what}${detail ? `: ${detail}` : ''}`); }
  return cond;
}

// Starts `cartoongan serve` on a free loopback port; resolves with {url, proc}.
export function startServer(args = [], root = ROOT) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['serve', '--port', '0', '--root', root, '--quiet', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => { proc.kill(); reject(new Error(`serve did not start: ${out}`)); }, 10000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/[^/\s]+\//);
      if (m) { clearTimeout(timer); resolve({ url: m[0], proc }); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`serve exited with ${code}: ${out}`)); });
  });
}

export function stopServer(s) {
  s.proc.removeAllListeners('exit');
  s.proc.kill('SIGTERM');
}

// The native CLI's cartoons of one photo, all six styles, at the photo's size.
function nativeOutputs(photo, tmp) {
  const out = path.join(tmp, 'native');
  execFileSync(BIN, ['cartoonize', '--all-styles', '--styles', LIGHT_STYLES.join(','), '--keep-original-size',
    '--skip-comparison', '--quiet', '--overwrite', '--output-dir', out, photo], { stdio: 'inherit' });
  const res = {};
  for (const s of [...STYLES, ...LIGHT_STYLES]) res[s] = fs.readFileSync(path.join(out, s, path.basename(photo)));
  return res;
}

// PSNR (dB, over RGB) between the page's result image and a PNG given as bytes; Infinity
// when identical. Both are decoded by the browser without colour management.
async function psnrInPage(page, pngBytes) {
  return page.evaluate(async (b64) => {
    const pixels = async (blob) => {
      const bmp = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
      const c = new OffscreenCanvas(bmp.width, bmp.height);
      const ctx = c.getContext('2d');
      ctx.drawImage(bmp, 0, 0);
      return { w: bmp.width, h: bmp.height, d: ctx.getImageData(0, 0, bmp.width, bmp.height).data };
    };
    const img = document.querySelector('[data-role="result"]');
    const a = await pixels(await (await fetch(img.src)).blob());
    const bin = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    const b = await pixels(new Blob([bin], { type: 'image/png' }));
    if (a.w !== b.w || a.h !== b.h) return { error: `size ${a.w}x${a.h}, expected ${b.w}x${b.h}` };
    let se = 0, n = 0, maxd = 0;
    for (let i = 0; i < a.d.length; i += 4)
      for (let c = 0; c < 3; c++) {
        const d = a.d[i + c] - b.d[i + c];
        se += d * d; n++; maxd = Math.max(maxd, Math.abs(d));
      }
    return { psnr: se === 0 ? Infinity : 10 * Math.log10(255 * 255 / (se / n)), maxd };
  }, Buffer.from(pngBytes).toString('base64'));
}

// The number of the page's latest run (each upload, style or option change starts one).
const runNumber = (page) => page.evaluate(() => Number(document.querySelector('[data-role="app"]').dataset.run || 0));

// Waits until a run after `after` reaches one of `states`.
async function waitState(page, after, states, timeout = 120000) {
  await page.waitForFunction(([a, s]) => {
    const app = document.querySelector('[data-role="app"]');
    return Number(app.dataset.run || 0) > a && s.includes(app.dataset.state);
  }, [after, states], { timeout });
  return page.evaluate(() => ({
    state: document.querySelector('[data-role="app"]').dataset.state,
    text: document.querySelector('[data-role="status"]').textContent,
  }));
}

// Waits for the result of a run of `style` (the result is cleared when a run starts).
async function waitResult(page, style, timeout = 120000) {
  await page.waitForFunction((st) => {
    const app = document.querySelector('[data-role="app"]');
    const img = document.querySelector('[data-role="result"]');
    return app.dataset.state === 'error' || (app.dataset.state === 'done' && img.dataset.style === st && img.src.startsWith('blob:'));
  }, style, { timeout });
  return page.evaluate(() => ({
    state: document.querySelector('[data-role="app"]').dataset.state,
    text: document.querySelector('[data-role="status"]').textContent,
  }));
}

async function setFile(page, file) {
  await page.setInputFiles('input[type=file]', file);
}

async function runMode(browser, isolated, native, nativeOdd) {
  const mode = isolated ? 'isolated' : 'not isolated';
  const server = await startServer(isolated ? [] : ['--no-isolation']);
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(server.url);
    await page.waitForFunction(() => /^Engine: .*kernel/.test(document.querySelector('[data-role="engine"]').textContent), null, { timeout: 60000 });
    const env = await page.evaluate(() => ({
      isolated: self.crossOriginIsolated, engine: document.querySelector('[data-role="engine"]').textContent,
    }));
    check(env.isolated === isolated, `${mode}: crossOriginIsolated is ${isolated}`, env.engine);
    check(isolated ? /\d+ threads/.test(env.engine) && !/1 thread\b/.test(env.engine) : /1 thread/.test(env.engine),
      `${mode}: ${isolated ? 'threaded' : 'single-threaded'} build chosen`, env.engine);

    // The style list offers the light styles, each label with its download size.
    const labels = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('select option')]
      .map((o) => [o.value, o.textContent])));
    check(LIGHT_STYLES.every((s) => /\bfast\b.*\b3\.5 MB\)$/.test(labels[s] || '')) && /44\.5 MB\)$/.test(labels.hayao),
      `${mode}: the style list offers the light styles with their sizes`, JSON.stringify(labels));

    // Every style on the same photo: the first upload, then style changes.
    await page.selectOption('select', STYLES[0]);
    await setFile(page, PHOTO);
    for (const [i, style] of [...STYLES, ...LIGHT_STYLES].entries()) {
      if (i > 0) await page.selectOption('select', style);
      const st = await waitResult(page, style);
      if (!check(st.state === 'done', `${mode}: ${style} result appears`, st.text)) continue;
      const r = await psnrInPage(page, native[style]);
      check(!r.error && r.psnr >= MIN_PSNR, `${mode}: ${style} equals the native CLI's output`,
        r.error || `PSNR ${r.psnr === Infinity ? 'inf (identical)' : r.psnr.toFixed(1) + ' dB'}, max difference ${r.maxd}`);
      if (LIGHT_STYLES.includes(style)) {
        // the light network, not the full one under another name (13 to 20 dB measured)
        const full = style.replace('light_', ''), rf = await psnrInPage(page, native[full]);
        check(!rf.error && rf.psnr < 30, `${mode}: ${style} differs from ${full}`, rf.error || `PSNR ${rf.psnr.toFixed(1)} dB`);
      }
    }
    // Sides that are not multiples of 4 (padded for the full network, run by the light one
    // at 4 ceil(side/4), cropped back), light_paprika first as the list was left there.
    await setFile(page, ODD_PHOTO);
    let st;
    for (const style of ['light_paprika', 'paprika']) {
      if (style === 'paprika') await page.selectOption('select', style);
      st = await waitResult(page, style);
      const r = await psnrInPage(page, nativeOdd[style]);
      check(st.state === 'done' && !r.error && r.psnr >= MIN_PSNR, `${mode}: 37x29 photo equals the native output (${style})`,
        r.error || `PSNR ${r.psnr === Infinity ? 'inf' : r.psnr.toFixed(1) + ' dB'}`);
    }

    // Not an image: the error state, with a message.
    let r0 = await runNumber(page);
    await setFile(page, path.join(repo, 'tests/data/images/notimage.jpg'));
    st = await waitState(page, r0, ['error', 'done']);
    check(st.state === 'error' && /not a JPEG, PNG or WebP/.test(st.text), `${mode}: a text file is refused`, st.text);
    const hasResult = await page.evaluate(() => document.querySelector('[data-role="result"]').hasAttribute('src'));
    check(!hasResult, `${mode}: no stale result after an error`);

    // A PNG header claiming 100000x100000: refused, never decoded.
    r0 = await runNumber(page);
    await setFile(page, path.join(repo, 'tests/data/images/huge.png'));
    st = await waitState(page, r0, ['error', 'done']);
    check(st.state === 'error' && /100000x100000 .* over this app's limit of 50 megapixels/.test(st.text),
      `${mode}: a 100000x100000 PNG is refused from its header`, st.text);

    if (isolated) {
      // Over the full-size network limit (4 MP): a 2400x1800 image made in the page.
      await page.check('[data-role="fullsize"]');
      r0 = await runNumber(page);
      await page.evaluate(async () => {
        const c = new OffscreenCanvas(2400, 1800);
        const ctx = c.getContext('2d');
        ctx.fillStyle = '#4a8'; ctx.fillRect(0, 0, 2400, 1800);
        const blob = await c.convertToBlob({ type: 'image/png' });
        const dt = new DataTransfer();
        dt.items.add(new File([blob], 'big.png', { type: 'image/png' }));
        const input = document.querySelector('input[type=file]');
        input.files = dt.files;
        input.dispatchEvent(new Event('change'));
      });
      st = await waitState(page, r0, ['error', 'done']);
      check(st.state === 'error' && /over the browser's limit/.test(st.text), `${mode}: full size over 4 megapixels is refused`, st.text);
      await page.uncheck('[data-role="fullsize"]');

      // The fp16 weights: a failed download first (error state and Retry), then the real one.
      await context.route('**/weights/*.f16.safetensors', (route) => route.abort('failed'));
      await page.check('[data-role="fp16"]');
      await page.selectOption('select', 'hayao');
      r0 = await runNumber(page);
      await setFile(page, PHOTO);
      st = await waitState(page, r0, ['error', 'done']);
      const retryVisible = await page.isVisible('[data-role="retry"]');
      check(st.state === 'error' && /weights/.test(st.text) && retryVisible, `${mode}: a failed weights download shows an error and Retry`, st.text);
      await context.unroute('**/weights/*.f16.safetensors');
      await page.click('[data-role="retry"]');
      st = await waitResult(page, 'hayao');
      const r16 = await psnrInPage(page, native.hayao);
      check(st.state === 'done' && !r16.error && r16.psnr >= 30, `${mode}: fp16 weights after Retry, close to fp32`,
        r16.error || `PSNR vs native fp32 ${r16.psnr.toFixed(1)} dB, max difference ${r16.maxd}`);
      // A light style's fp16 copy: its label says 1.8 MB, and it runs close to fp32.
      await page.selectOption('select', 'light_paprika');
      st = await waitResult(page, 'light_paprika');
      const rl16 = await psnrInPage(page, native.light_paprika);
      const label16 = await page.evaluate(() => document.querySelector('option[value="light_paprika"]').textContent);
      check(st.state === 'done' && !rl16.error && rl16.psnr >= 30 && /1\.8 MB\)$/.test(label16),
        `${mode}: light fp16 weights (${label16}), close to fp32`,
        rl16.error || `PSNR vs native fp32 ${rl16.psnr.toFixed(1)} dB, max difference ${rl16.maxd}`);
      await page.uncheck('[data-role="fp16"]');
      await waitResult(page, 'light_paprika'); // the fp32 rerun, so that it does not share the CPU below

      // The sizes in the labels are the files' (as served, rounded to 0.1 MB), and the
      // server gives the weights as plain bytes.
      const served = await page.evaluate(async () => Promise.all([...document.querySelectorAll('option[data-mb]')]
        .flatMap((o) => [[`${o.value}.safetensors`, o.dataset.mb], [`${o.value}.f16.safetensors`, o.dataset.mbF16]])
        .map(async ([f, mb]) => {
          const r = await fetch(`weights/${f}`, { method: 'HEAD' });
          return { f, mb, status: r.status, type: r.headers.get('Content-Type'), got: (Number(r.headers.get('Content-Length')) / 1e6).toFixed(1) };
        })));
      const wrong = served.filter((x) => x.status !== 200 || x.type !== 'application/octet-stream' || x.got !== x.mb);
      check(served.length === 12 && wrong.length === 0, `${mode}: the labels' sizes are the served files' (12 files)`,
        JSON.stringify(wrong.length ? wrong : served.map((x) => `${x.f} ${x.got} MB`)));

      // A light style on a photo scaled to 720x450 (a 1440x900 image made in the page), on
      // 2 threads: the issue's goal is under 1.5 s (the full model takes about 12 s).
      const p2 = await context.newPage();
      try {
        await p2.goto(`${server.url}?threads=2`);
        await p2.waitForFunction(() => /kernel/.test(document.querySelector('[data-role="engine"]').textContent));
        await p2.selectOption('select', 'light_shinkai');
        await p2.evaluate(async () => {
          const c = new OffscreenCanvas(1440, 900);
          const ctx = c.getContext('2d');
          const g = ctx.createLinearGradient(0, 0, 1440, 900);
          g.addColorStop(0, '#2a6'); g.addColorStop(0.5, '#fc4'); g.addColorStop(1, '#35a');
          ctx.fillStyle = g; ctx.fillRect(0, 0, 1440, 900);
          ctx.fillStyle = '#fff'; ctx.font = '160px sans-serif'; ctx.fillText('cartoongan', 200, 500);
          const blob = await c.convertToBlob({ type: 'image/png' });
          const dt = new DataTransfer();
          dt.items.add(new File([blob], 'wide.png', { type: 'image/png' }));
          const input = document.querySelector('input[type=file]');
          input.files = dt.files;
          input.dispatchEvent(new Event('change'));
        });
        const s2 = await waitResult(p2, 'light_shinkai');
        const info = await p2.evaluate(() => ({
          caption: document.querySelector('[data-role="result-caption"]').textContent,
          ms: Number(document.querySelector('[data-role="result"]').dataset.ms),
          engine: document.querySelector('[data-role="engine"]').textContent,
        }));
        check(s2.state === 'done' && /720x450$/.test(info.caption) && /2 threads/.test(info.engine) && info.ms > 0,
          `${mode}: light_shinkai at 720x450 on 2 threads`,
          `${(info.ms / 1000).toFixed(2)} s for the network (goal: under 1.5 s); ${s2.text}`);
      } finally {
        await p2.close();
      }

      // Weights come from the Cache API the second time: no request for them.
      let weightRequests = 0;
      page.on('request', (req) => { if (req.url().includes('/weights/')) weightRequests++; });
      await page.reload();
      await page.waitForFunction(() => /kernel/.test(document.querySelector('[data-role="engine"]').textContent));
      await page.selectOption('select', 'shinkai');
      await setFile(page, PHOTO);
      st = await waitResult(page, 'shinkai');
      check(st.state === 'done' && weightRequests === 0, `${mode}: weights served from the Cache API on reload`, `${weightRequests} weight requests`);
    }

    if (!isolated) {
      // A browser without WebAssembly SIMD: a clear message, and nothing to click.
      const old = await browser.newContext();
      const p2 = await old.newPage();
      await p2.addInitScript(() => { WebAssembly.validate = () => false; });
      await p2.goto(server.url);
      const s2 = await waitState(p2, -1, ['error']);
      const disabled = await p2.isDisabled('input[type=file]');
      check(/lacks WebAssembly SIMD/.test(s2.text) && disabled, `${mode}: a browser without SIMD gets a message`, s2.text);
      await old.close();
    }

    // The server refuses paths outside the app, even when the browser is not the one asking.
    const outside = await page.evaluate(async () => (await fetch('/%2e%2e/%2e%2e/etc/passwd')).status);
    check(outside === 404, `${mode}: /%2e%2e/... is not served`, `HTTP ${outside}`);
    check(errors.length === 0, `${mode}: no uncaught page errors`, errors.join('; '));
  } finally {
    await context.close();
    stopServer(server);
  }
}

async function screenshot(browser, file, photo) {
  const server = await startServer();
  const page = await browser.newPage({ viewport: { width: 1100, height: 820 } });
  try {
    await page.goto(server.url);
    await page.waitForFunction(() => /kernel/.test(document.querySelector('[data-role="engine"]').textContent));
    await page.selectOption('select', 'hayao');
    await setFile(page, photo);
    const st = await waitResult(page, 'hayao', 600000);
    console.log(st.text);
    await page.waitForFunction(() => document.querySelector('[data-role="original"]').complete);
    await page.screenshot({ path: file, fullPage: true });
  } finally {
    await page.close();
    stopServer(server);
  }
}

// The app's times on 2 threads for a photo capped to 720 px (the page's default), per
// style: the network alone (cg_stylize, as the worker measures it) and end to end (from
// the request to the result shown: decoding, the Lanczos downscale, PNG encoding), medians
// of `runs` after a warm-up run that also downloads the weights.
async function timeStyles(browser, photo, styles, runs) {
  const server = await startServer();
  const page = await browser.newPage();
  try {
    await page.goto(`${server.url}?threads=2`);
    await page.waitForFunction(() => /kernel/.test(document.querySelector('[data-role="engine"]').textContent));
    console.log(await page.evaluate(() => document.querySelector('[data-role="engine"]').textContent));
    const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
    let first = true;
    for (const style of styles) {
      const net = [], all = [];
      let caption = '';
      for (let i = 0; i <= runs; i++) {
        const t0 = Date.now();
        if (first) {
          await page.selectOption('select', style);
          await setFile(page, photo);
          first = false;
        } else if (i === 0) {
          await page.selectOption('select', style);
        } else {
          await page.evaluate(() => document.querySelector('select').dispatchEvent(new Event('change')));
        }
        const st = await waitResult(page, style, 600000);
        const t1 = Date.now();
        if (st.state !== 'done') throw new Error(`${style}: ${st.text}`);
        const r = await page.evaluate(() => ({
          ms: Number(document.querySelector('[data-role="result"]').dataset.ms),
          caption: document.querySelector('[data-role="result-caption"]').textContent,
        }));
        caption = r.caption;
        if (i > 0) { net.push(r.ms); all.push(t1 - t0); }
      }
      console.log(`${style}: ${caption}: network ${(median(net) / 1000).toFixed(2)} s, end to end ` +
        `${(median(all) / 1000).toFixed(2)} s (median of ${runs}; network runs ${net.map((x) => (x / 1000).toFixed(2)).join(', ')} s)`);
    }
  } finally {
    await page.close();
    stopServer(server);
  }
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cg_e2e_'));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS, chromiumSandbox: false,
  });
  try {
    const argv = process.argv.slice(2);
    if (argv[0] === '--screenshot') {
      await screenshot(browser, argv[1], argv[2]);
      return;
    }
    if (argv[0] === '--time') {
      const styles = argv.length > 2 ? argv.slice(2) : ['shinkai', 'light_shinkai', 'paprika', 'light_paprika'];
      await timeStyles(browser, argv[1], styles, Number(process.env.RUNS) || 3);
      return;
    }
    const native = nativeOutputs(PHOTO, tmp), nativeOdd = nativeOutputs(ODD_PHOTO, tmp);
    await runMode(browser, true, native, nativeOdd);
    await runMode(browser, false, native, nativeOdd);
  } catch (e) {
    check(false, 'e2e ran to the end', e.stack || String(e));
  } finally {
    await browser.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) main();
