// worker.js: the Web Worker that runs the engine, so the page never freezes while a photo
// is cartoonized. It loads one of the two builds (threads when the page is cross-origin
// isolated, else single-threaded), fetches each style's weights once into the Cache API,
// decodes the photo, scales it as the CLI does, and returns the cartoon's RGBA pixels,
// reporting progress.
//
// Messages in:  {type: 'init', build: 'mt'|'st', threads}
//               {type: 'run', id, style, precision: 'fp32'|'fp16', weights: File|null,
//                file: Blob, maxSide}
//                (maxSide 0: full size; weights: a custom style's .safetensors, read from
//                the user's file instead of weights/<style>.safetensors)
// Messages out: {type: 'ready', build, threads, kernel}
//               {type: 'loading', id, style, loaded, total, cached}
//               {type: 'progress', id, fraction, width, height}
//               {type: 'done', id, width, height, rgba, ms, threads}
//               {type: 'error', id, stage: 'init'|'image'|'weights'|'engine', message}
'use strict';

// A decoded photo larger than this is refused (the CLI's default is 100 MP, but here the
// RGBA copy, the RGB copy in the wasm heap and the browser's own decode all count).
const MAX_INPUT_PIXELS = 50e6;
// The network's input at full size: it needs about 0.8 KB per pixel, and wasm32 has 4 GB
// in all, weights included.
const MAX_NETWORK_PIXELS = 4e6;

const CACHE_NAME = 'cartoongan-weights-v1';
// The library refuses weights files over 256 MB (the real ones are 44.5 MB); a bigger
// file is refused before it is read into memory.
const MAX_WEIGHTS_BYTES = 256 * 1024 * 1024;
const STATUS_NAMES = ['ok', 'invalid argument', 'input/output error', 'bad file format',
  'bad weights', 'over a size limit', 'out of memory', 'cancelled'];

let engine = null;          // the emscripten module
let threads = 1;
let loadedKey = null;       // 'style/precision' of the model in the engine
let pending = null;         // the latest 'run' not yet started: older ones are dropped
let busy = false;

function post(msg, transfer) { self.postMessage(msg, transfer || []); }

function engineError(status) {
  const detail = engine.UTF8ToString(engine._cgw_last_error());
  return detail || STATUS_NAMES[status] || `status ${status}`;
}

async function init(msg) {
  const script = msg.build === 'mt' ? 'cartoongan_mt.js' : 'cartoongan_st.js';
  const url = new URL(script, self.location.href).href;
  importScripts(url);
  threads = msg.build === 'mt' ? Math.max(1, msg.threads | 0) : 1;
  engine = await self.createCartoonGAN({
    // pthread workers load the main script again; in a worker emscripten cannot find it
    mainScriptUrlOrBlob: url,
    // the calling thread computes too, so n threads need n - 1 workers
    cgPoolSize: Math.max(0, threads - 1),
    onProgress: (fraction) => {
      if (current) post({ type: 'progress', id: current, fraction });
      return false;
    },
  });
  post({ type: 'ready', build: msg.build, threads, kernel: engine.UTF8ToString(engine._cgw_kernel()) });
}

let current = 0; // the id of the run in progress, for progress messages

// The weights file's bytes: from the cache when fetched before, else downloaded with
// progress and stored. A failed or partial download is never cached.
async function fetchWeights(id, style, precision) {
  const file = precision === 'fp16' ? `weights/${style}.f16.safetensors` : `weights/${style}.safetensors`;
  const url = new URL(file, self.location.href).href;
  const cache = self.caches ? await self.caches.open(CACHE_NAME).catch(() => null) : null;
  const hit = cache ? await cache.match(url) : null;
  if (hit) {
    const buf = await hit.arrayBuffer();
    post({ type: 'loading', id, style, loaded: buf.byteLength, total: buf.byteLength, cached: true });
    return buf;
  }
  let resp;
  try {
    resp = await fetch(url);
  } catch (e) {
    throw new Error(`cannot download the ${style} weights (${e.message})`);
  }
  if (!resp.ok) throw new Error(`cannot download the ${style} weights: HTTP ${resp.status} for ${file}`);
  const total = Number(resp.headers.get('Content-Length')) || 0;
  const parts = [];
  let loaded = 0, lastPost = 0;
  const reader = resp.body.getReader();
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      throw new Error(`the download of the ${style} weights broke off (${e.message})`);
    }
    if (chunk.done) break;
    parts.push(chunk.value);
    loaded += chunk.value.byteLength;
    const now = performance.now();
    if (now - lastPost > 100) {
      post({ type: 'loading', id, style, loaded, total, cached: false });
      lastPost = now;
    }
  }
  if (total && loaded !== total) throw new Error(`the download of the ${style} weights broke off at ${loaded} of ${total} bytes`);
  const bytes = new Uint8Array(loaded);
  let o = 0;
  for (const p of parts) { bytes.set(p, o); o += p.byteLength; }
  post({ type: 'loading', id, style, loaded, total: loaded, cached: false });
  if (cache) {
    await cache.put(url, new Response(bytes, { headers: { 'Content-Type': 'application/octet-stream' } }))
      .catch(() => {}); // a full or unavailable cache only costs a download next time
  }
  return bytes.buffer;
}

// A custom style's bytes, from the user's own file (never cached: it is already local).
async function readCustomWeights(id, style, file) {
  if (file.size > MAX_WEIGHTS_BYTES) {
    throw new Error(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB, too large for a CartoonGAN generator (the released ones are 44.5 MB)`);
  }
  post({ type: 'loading', id, style, loaded: 0, total: file.size, cached: false });
  let buf;
  try {
    buf = await file.arrayBuffer();
  } catch (e) {
    throw new Error(`cannot read ${file.name} (${e.message})`);
  }
  post({ type: 'loading', id, style, loaded: buf.byteLength, total: buf.byteLength, cached: false });
  return buf;
}

function loadModel(buf, name) {
  const n = buf.byteLength;
  const p = engine._cgw_alloc(n);
  if (!p) throw new Error('out of memory for the weights');
  engine.HEAPU8.set(new Uint8Array(buf), p);
  const nameBytes = new TextEncoder().encode(name + '\0');
  const np = engine._cgw_alloc(nameBytes.length);
  engine.HEAPU8.set(nameBytes, np);
  const st = engine._cgw_load(p, n, np, threads);
  engine._cgw_free(p);
  engine._cgw_free(np);
  if (st !== 0) throw new Error(engineError(st));
}

class ImageError extends Error {}

// JPEG, PNG or WebP, by their first bytes (the browser would decode more, e.g. GIF or
// BMP, but the app promises what the CLI reads).
function sniff(b) {
  const ascii = (o, n) => String.fromCharCode(...b.subarray(o, o + n));
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b[0] === 0x89 && ascii(1, 3) === 'PNG') return 'png';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 4) === 'WEBP') return 'webp';
  return null;
}

// Width and height from the header (null when not found in b), so that an image over the
// limit is refused before the browser spends memory decoding it, as the CLI does.
function headerSize(b, kind) {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const ascii = (o, n) => String.fromCharCode(...b.subarray(o, o + n));
  if (kind === 'png') return b.length >= 24 ? [dv.getUint32(16), dv.getUint32(20)] : null;
  if (kind === 'webp') {
    const chunk = ascii(12, 4);
    const u24 = (o) => b[o] | b[o + 1] << 8 | b[o + 2] << 16;
    if (chunk === 'VP8X' && b.length >= 30) return [1 + u24(24), 1 + u24(27)];
    if (chunk === 'VP8L' && b.length >= 25) { const v = dv.getUint32(21, true); return [1 + (v & 0x3fff), 1 + (v >>> 14 & 0x3fff)]; }
    if (chunk === 'VP8 ' && b.length >= 30) return [dv.getUint16(26, true) & 0x3fff, dv.getUint16(28, true) & 0x3fff];
    return null;
  }
  for (let o = 2; o + 9 < b.length;) { // JPEG: the markers up to the first SOFn
    if (b[o] !== 0xff) return null;
    const m = b[o + 1];
    if (m === 0xff) { o++; continue; }
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd8)) { o += 2; continue; }
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) return [dv.getUint16(o + 7), dv.getUint16(o + 5)];
    o += 2 + dv.getUint16(o + 2);
  }
  return null;
}

const tooLarge = (w, h) => `the photo is ${w}x${h} (${(w * h / 1e6).toFixed(1)} megapixels), over this app's limit of ${MAX_INPUT_PIXELS / 1e6} megapixels`;

// Decodes the photo upright (EXIF orientation applied) with colours as stored (no colour
// management, as the CLI), composited onto white, as packed RGB.
async function decode(file) {
  const head = new Uint8Array(await file.slice(0, 256 * 1024).arrayBuffer());
  const kind = sniff(head);
  if (!kind) throw new ImageError(`${file.name || 'this file'} is not a JPEG, PNG or WebP image`);
  const size = headerSize(head, kind);
  if (size && size[0] * size[1] > MAX_INPUT_PIXELS) throw new ImageError(tooLarge(size[0], size[1]));
  let bmp;
  try {
    bmp = await createImageBitmap(file, { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    throw new ImageError(`${file.name || 'this file'} could not be decoded: it is damaged, or too large for this browser`);
  }
  const { width, height } = bmp;
  if (width * height > MAX_INPUT_PIXELS) {
    bmp.close();
    throw new ImageError(tooLarge(width, height));
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
  }
  return { width, height, rgb };
}

// The processed size: the long side capped at maxSide, rounded as the CLI's --max-height.
function cappedSize(w, h, maxSide) {
  if (!maxSide || Math.max(w, h) <= maxSide) return [w, h];
  return w >= h ? [maxSide, Math.max(1, Math.floor(h * maxSide / w + 0.5))]
                : [Math.max(1, Math.floor(w * maxSide / h + 0.5)), maxSide];
}

async function run(msg) {
  const { id, style, precision } = msg;
  let img;
  try {
    img = await decode(msg.file);
  } catch (e) {
    post({ type: 'error', id, stage: 'image', message: e.message });
    return;
  }
  const { width, height } = img;
  const [outWidth, outHeight] = cappedSize(width, height, msg.maxSide);
  if (outWidth * outHeight > MAX_NETWORK_PIXELS) {
    post({ type: 'error', id, stage: 'image', message: `at full size the photo is ${outWidth}x${outHeight} (${(outWidth * outHeight / 1e6).toFixed(1)} megapixels), over the browser's limit of ${MAX_NETWORK_PIXELS / 1e6} megapixels: untick "full size"` });
    return;
  }
  const custom = msg.weights;
  // a custom file is known by its name, size and date: picking another file reloads
  const key = custom ? `custom/${custom.name}/${custom.size}/${custom.lastModified}` : `${style}/${precision}`;
  if (loadedKey !== key) {
    let buf;
    try {
      buf = custom ? await readCustomWeights(id, style, custom) : await fetchWeights(id, style, precision);
    } catch (e) {
      post({ type: 'error', id, stage: 'weights', message: e.message });
      return;
    }
    try {
      engine._cgw_unload(); // free the old model before the new one's memory is needed
      loadedKey = null;
      loadModel(buf, custom ? custom.name : `${style} weights`);
      loadedKey = key;
    } catch (e) {
      // a training checkpoint (G, D and Adam in one file) is the likeliest wrong pick
      const hint = custom ? '; pick a generator .safetensors (`cartoongan export --checkpoint-dir` makes one from a training checkpoint)' : '';
      post({ type: 'error', id, stage: 'weights', message: `the ${style} weights are unusable: ${e.message}${hint}` });
      return;
    }
  }
  // Copies in and out of the wasm heap go through fresh views: the heap may grow (and
  // its buffer change) inside any call.
  const inBytes = width * height * 3, outBytes = outWidth * outHeight * 3;
  const pin = engine._cgw_alloc(inBytes);
  const pout = outWidth === width && outHeight === height ? pin : engine._cgw_alloc(outBytes);
  if (!pin || !pout) {
    post({ type: 'error', id, stage: 'engine', message: 'out of memory for the image' });
    return;
  }
  try {
    engine.HEAPU8.set(img.rgb, pin);
    img = null; // let the collector have it during the long call
    post({ type: 'progress', id, fraction: 0, width: outWidth, height: outHeight });
    if (pout !== pin) engine._cgw_resize(pout, outWidth, outHeight, pin, width, height);
    current = id;
    const t0 = performance.now();
    const st = engine._cgw_stylize(pout, pout, outWidth, outHeight);
    const ms = performance.now() - t0;
    current = 0;
    if (st !== 0) {
      post({ type: 'error', id, stage: 'engine', message: engineError(st) });
      return;
    }
    const out = engine.HEAPU8.subarray(pout, pout + outBytes);
    const rgba = new Uint8ClampedArray(outWidth * outHeight * 4);
    for (let i = 0, j = 0; j < outBytes; i += 4, j += 3) {
      rgba[i] = out[j]; rgba[i + 1] = out[j + 1]; rgba[i + 2] = out[j + 2]; rgba[i + 3] = 255;
    }
    post({ type: 'done', id, width: outWidth, height: outHeight, rgba: rgba.buffer, ms,
      threads: engine._cgw_threads_used() }, [rgba.buffer]);
  } finally {
    current = 0;
    if (pout !== pin) engine._cgw_free(pout);
    engine._cgw_free(pin);
  }
}

// Runs the latest request; requests that arrived while one was running are dropped in
// favour of the newest (a new photo or style makes the old result moot).
async function pump() {
  if (busy) return;
  busy = true;
  try {
    while (pending) {
      const msg = pending;
      pending = null;
      try {
        await run(msg);
      } catch (e) {
        post({ type: 'error', id: msg.id, stage: 'engine', message: e.message || String(e) });
      }
    }
  } finally {
    busy = false;
  }
}

self.onmessage = (e) => {
  const msg = e.data;
  if (msg.type === 'init') {
    init(msg).catch((err) => post({ type: 'error', id: 0, stage: 'init', message: `cannot start the engine: ${err.message || err}` }));
  } else if (msg.type === 'run') {
    pending = msg;
    // let messages already queued arrive first, so only the newest one runs
    setTimeout(pump, 0);
  }
};
