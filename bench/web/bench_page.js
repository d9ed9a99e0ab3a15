// bench_page.js: the browser benchmark's page script (driven by bench/web_bench.mjs).
// Times the cartoongan wasm build (in a Web Worker, as the app runs it) against the same
// generator built with TensorFlow.js ops on its wasm backend (on the page, as the seed's
// demo ran it), both on 2 threads, same weights, same photo; first checks that the two
// agree on one image. Publishes the outcome as window.benchResult.

const SIZES = (new URLSearchParams(location.search).get('sizes') || '256,512').split(',').map(Number);
const RUNS = Number(new URLSearchParams(location.search).get('runs') || 3);
const THREADS = 2;
const log = (s) => { document.getElementById('log').textContent += s + '\n'; console.log(s); };
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

// safetensors -> {name: {shape, data: Float32Array}} (F32 only: the benchmark's weights).
function parseSafetensors(buf) {
  const dv = new DataView(buf);
  const hlen = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, hlen)));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = t.data_offsets;
    out[name] = { shape: t.shape, data: new Float32Array(buf.slice(8 + hlen + a, 8 + hlen + b)) };
  }
  return out;
}

// The generator in TensorFlow.js ops, NHWC. PyTorch's conv weights [out,in,kh,kw] become
// HWIO, and ConvTranspose2d's [in,out,kh,kw] become conv2dTranspose's [kh,kw,out,in]: the
// same transpose, and no flip (both are adjoints of the same cross-correlation). The
// original's paddings: reflection around the 7x7 convs and in the residual blocks, zeros
// around the strided convs (k3 s2 p1) and the other 3x3 ones; the transposed convs (k3 s2
// p1 output_padding 1) are a 'valid' conv2dTranspose (2h+1 rows) less its first row and
// column. Instance norm by tf.moments, eps 1e-9.
function buildTfGenerator(t) {
  const W = {};
  for (const [name, v] of Object.entries(t)) {
    const x = tf.tensor(v.data, v.shape);
    W[name] = name.endsWith('.weight') ? tf.transpose(x, [2, 3, 1, 0]) : x;
    if (W[name] !== x) x.dispose();
  }
  const conv = (x, n, stride = 1, pad = 'valid') =>
    tf.fused.conv2d({ x, filter: W[`${n}.weight`], bias: W[`${n}.bias`], strides: stride, pad });
  const zp = (x) => tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]);
  const rp = (x, p) => tf.mirrorPad(x, [[0, 0], [p, p], [p, p], [0, 0]], 'reflect');
  const inorm = (x, n) => {
    const { mean, variance } = tf.moments(x, [1, 2], true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-9))), W[`${n}.scale`]), W[`${n}.shift`]);
  };
  const deconv = (x, n) => {
    const [b, h, w] = x.shape, co = W[`${n}.weight`].shape[2];
    const y = tf.conv2dTranspose(x, W[`${n}.weight`], [b, 2 * h + 1, 2 * w + 1, co], 2, 'valid');
    return tf.add(tf.slice(y, [0, 1, 1, 0], [b, 2 * h, 2 * w, co]), W[`${n}.bias`]);
  };
  // Layer by layer, each in its own tidy, so that only the running activation outlives a
  // block (one tidy around everything keeps every intermediate until the end: over 2 GB at
  // 512x512, past what the wasm backend's heap holds).
  return (input) => {
    let x = input;
    const next = (f) => {
      const y = tf.tidy(() => f(x));
      if (x !== input) x.dispose();
      x = y;
    };
    next((x) => tf.relu(inorm(conv(rp(x, 3), 'conv01_1'), 'in01_1')));
    next((x) => tf.relu(inorm(conv(conv(zp(x), 'conv02_1', 2), 'conv02_2', 1, 'same'), 'in02_1')));
    next((x) => tf.relu(inorm(conv(conv(zp(x), 'conv03_1', 2), 'conv03_2', 1, 'same'), 'in03_1')));
    for (let i = 4; i <= 11; i++) {
      const k = String(i).padStart(2, '0');
      next((x) => tf.add(x, inorm(conv(rp(tf.relu(inorm(conv(rp(x, 1), `conv${k}_1`), `in${k}_1`)), 1), `conv${k}_2`), `in${k}_2`)));
    }
    next((x) => tf.relu(inorm(conv(deconv(x, 'deconv01_1'), 'deconv01_2', 1, 'same'), 'in12_1')));
    next((x) => tf.relu(inorm(conv(deconv(x, 'deconv02_1'), 'deconv02_2', 1, 'same'), 'in13_1')));
    next((x) => tf.tanh(conv(rp(x, 3), 'deconv03_1')));
    return x;
  };
}

// The photo's centre square at s x s, as packed RGB8.
async function photoRgb(s) {
  const bmp = await createImageBitmap(await (await fetch('photo.jpg')).blob());
  const c = Math.min(bmp.width, bmp.height);
  const cv = new OffscreenCanvas(s, s), ctx = cv.getContext('2d');
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bmp, (bmp.width - c) / 2, (bmp.height - c) / 2, c, c, 0, 0, s, s);
  const d = ctx.getImageData(0, 0, s, s).data, rgb = new Uint8Array(s * s * 3);
  for (let i = 0, j = 0; i < d.length; i += 4, j += 3) { rgb[j] = d[i]; rgb[j + 1] = d[i + 1]; rgb[j + 2] = d[i + 2]; }
  return rgb;
}

// Our engine in a worker; resolves to {ms: [...], out: RGB of the last run}.
function ourWorker() {
  const w = new Worker('bench_worker.js');
  let resolveNext;
  w.onmessage = (e) => resolveNext(e.data);
  const call = (msg, transfer) => new Promise((r) => { resolveNext = r; w.postMessage(msg, transfer); });
  return { call, terminate: () => w.terminate() };
}

function psnr(a, b) {
  let se = 0;
  for (let i = 0; i < a.length; i++) { const d = a[i] - b[i]; se += d * d; }
  return se === 0 ? Infinity : 10 * Math.log10(255 * 255 / (se / a.length));
}

async function timeTf(gen, rgb, s, runs) {
  // RGB8 -> BGR in [-1, 1], NHWC, as the engine feeds its network
  const x = new Float32Array(s * s * 3);
  for (let i = 0; i < s * s; i++)
    for (let c = 0; c < 3; c++) x[i * 3 + c] = rgb[i * 3 + (2 - c)] / 127.5 - 1;
  const input = tf.tensor(x, [1, s, s, 3]);
  const ms = [];
  let y = null;
  for (let r = 0; r <= runs; r++) { // run 0 warms up (kernels, memory)
    const t0 = performance.now();
    const out = gen(input);
    y = await out.data();
    out.dispose();
    if (r > 0) ms.push(performance.now() - t0);
  }
  input.dispose();
  const rgbOut = new Uint8Array(s * s * 3);
  for (let i = 0; i < s * s; i++)
    for (let c = 0; c < 3; c++) {
      const v = Math.round(255 * (y[i * 3 + (2 - c)] * 0.5 + 0.5));
      rgbOut[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  return { ms, out: rgbOut };
}

async function main() {
  const result = { sizes: {}, threads: THREADS, runs: RUNS, ua: navigator.userAgent,
    isolated: self.crossOriginIsolated };
  try {
    if (!self.crossOriginIsolated) throw new Error('the page is not cross-origin isolated: no threads');
    const weights = await (await fetch('weights/hayao.safetensors')).arrayBuffer();

    const ours = ourWorker();
    const ready = await ours.call({ type: 'init', threads: THREADS, weights }, []);
    if (ready.error) throw new Error(ready.error);
    log(`cartoongan: kernel ${ready.kernel}, ${THREADS} threads`);

    tf.wasm.setWasmPaths(new URL('tfjs/', location.href).href);
    tf.wasm.setThreadsCount(THREADS);
    await tf.setBackend('wasm');
    await tf.ready();
    result.tfThreads = tf.wasm.getThreadsCount();
    result.tfVersion = tf.version.tfjs;
    log(`tfjs ${tf.version.tfjs}: backend ${tf.getBackend()}, ${result.tfThreads} threads, SIMD ${await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')}`);
    const gen = buildTfGenerator(parseSafetensors(weights));

    for (const s of SIZES) {
      const rgb = await photoRgb(s);
      const mine = await ours.call({ type: 'run', rgb, size: s, runs: RUNS });
      if (mine.error) throw new Error(mine.error);
      const theirs = await timeTf(gen, rgb, s, RUNS);
      const agree = psnr(mine.out, theirs.out);
      const r = { ours: median(mine.ms), tfjs: median(theirs.ms), oursAll: mine.ms, tfjsAll: theirs.ms, psnr: agree };
      result.sizes[s] = r;
      log(`${s}x${s}: cartoongan ${(r.ours / 1000).toFixed(2)} s, tfjs ${(r.tfjs / 1000).toFixed(2)} s, ` +
        `ratio ${(r.tfjs / r.ours).toFixed(2)}x; outputs agree at ${agree.toFixed(1)} dB`);
    }
    ours.terminate();
  } catch (e) {
    result.error = e.stack || String(e);
    log(`error: ${result.error}`);
  }
  window.benchResult = result;
}

main();
