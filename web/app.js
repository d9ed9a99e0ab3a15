// app.js: the page's logic: feature checks, the worker that runs the engine, the controls
// and the visible states (idle, loading the model, cartoonizing, done, error). Every pixel
// operation happens in worker.js; this file only shows and routes.
//
// URL parameters, for tests and benchmarks: ?build=st forces the single-threaded build,
// ?threads=N sets the thread count of the threaded one (default: the CPU count, up to 8).
//
// Styles: the four released ones and the two light ones (the seed project's light
// generator: weights/light_<style>.safetensors, 3.5 MB, about ten times faster) are fetched
// from weights/; a custom style (a generator .safetensors the user picks or drops, e.g. one
// `cartoongan export --checkpoint-dir` wrote) is read from the user's own file and joins
// the list as the option "custom".

const $ = (role) => document.querySelector(`[data-role="${role}"]`);
const app = $('app');
const ui = {
  style: $('style'), file: $('file'), drop: $('drop'), fullsize: $('fullsize'), fp16: $('fp16'),
  status: $('status'), progress: $('progress'), retry: $('retry'), original: $('original'),
  result: $('result'), caption: $('result-caption'), download: $('download'), engine: $('engine'),
  weights: $('weights'),
};
const LONG_SIDE = 720; // the seed's demo capped photos the same way
const STYLE_NAMES = {
  shinkai: 'Shinkai', hayao: 'Hayao', hosoda: 'Hosoda', paprika: 'Paprika',
  light_shinkai: 'Light Shinkai', light_paprika: 'Light Paprika',
};

// A minimal module using v128 (as wasm-feature-detect checks SIMD).
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
  10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

const params = new URLSearchParams(location.search);
let worker = null, ready = false;
let seq = 0;            // id of the latest request; results of older ones are ignored
let photo = null;       // the File being shown
let originalUrl = null, resultUrl = null;
let engineInfo = '';
let customWeights = null; // the File of the custom style, when one was picked

// A custom style is named after its file ("mystyle.safetensors" -> "mystyle").
const customName = (file) => file.name.replace(/\.safetensors$/i, '') || 'custom';
const styleLabel = (style) => (style === 'custom' && customWeights ? customName(customWeights) : STYLE_NAMES[style] || style);

function setState(state, text) {
  app.dataset.state = state;
  ui.status.textContent = text;
  ui.progress.hidden = !(state === 'loading' || state === 'cartoonizing');
  ui.retry.hidden = state !== 'error';
}

function mb(bytes) { return (bytes / 1e6).toFixed(1); }

// Each built-in style's label shows the download it costs: the fp32 file, or its fp16
// copy when "Smaller download" is ticked (sizes from the options' data-mb attributes).
function sizeLabels() {
  for (const opt of ui.style.querySelectorAll('option[data-mb]')) {
    const size = ui.fp16.checked ? opt.dataset.mbF16 : opt.dataset.mb;
    const fast = opt.value.startsWith('light_') ? 'fast, ' : '';
    opt.textContent = `${STYLE_NAMES[opt.value] || opt.value} (${fast}${size} MB)`;
  }
}

function startWorker() {
  const isolated = self.crossOriginIsolated && typeof SharedArrayBuffer === 'function';
  const build = isolated && params.get('build') !== 'st' ? 'mt' : 'st';
  const threads = build === 'mt'
    ? Math.max(1, Math.min(8, Number(params.get('threads')) || navigator.hardwareConcurrency || 2)) : 1;
  ready = false;
  worker = new Worker('worker.js');
  worker.onmessage = (e) => onWorkerMessage(e.data);
  worker.onerror = (e) => {
    // an abort inside the engine (e.g. memory exhausted) ends the worker: start afresh
    worker.terminate();
    worker = null;
    setState('error', `The engine stopped: ${e.message || 'unknown error'}`);
  };
  worker.postMessage({ type: 'init', build, threads });
  engineInfo = build === 'mt'
    ? `WebAssembly SIMD, ${threads} threads`
    : `WebAssembly SIMD, 1 thread${isolated ? '' : ' (this page is not cross-origin isolated, so no threads)'}`;
}

function onWorkerMessage(m) {
  if (m.type === 'ready') {
    ready = true;
    ui.engine.textContent = `Engine: ${engineInfo}, kernel ${m.kernel}.`;
    if (photo) run();
    return;
  }
  if (m.id !== seq && m.type !== 'error') return; // a superseded request
  if (m.type === 'error' && m.id && m.id !== seq) return;
  switch (m.type) {
    case 'loading': {
      const name = STYLE_NAMES[m.style] || m.style;
      setState('loading', m.cached
        ? `Loading the ${name} model from the cache (${mb(m.total)} MB)…`
        : `Loading the ${name} model: ${mb(m.loaded)} of ${m.total ? mb(m.total) : '?'} MB…`);
      ui.progress.value = m.total ? m.loaded / m.total : 0;
      break;
    }
    case 'progress':
      if (m.width) ui.progress.dataset.size = `${m.width}x${m.height}`;
      setState('cartoonizing', `Cartoonizing (${ui.progress.dataset.size}): ${Math.round(m.fraction * 100)} %`);
      ui.progress.value = m.fraction;
      break;
    case 'done':
      showResult(m);
      break;
    case 'error':
      setState('error', m.message);
      if (m.stage === 'init') {
        worker.terminate();
        worker = null;
      }
      break;
  }
}

async function showResult(m) {
  const canvas = document.createElement('canvas');
  canvas.width = m.width;
  canvas.height = m.height;
  canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(m.rgba), m.width, m.height), 0, 0);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  if (m.id !== seq) return;
  if (resultUrl) URL.revokeObjectURL(resultUrl);
  resultUrl = URL.createObjectURL(blob);
  const style = ui.style.value;
  ui.result.dataset.style = style;
  ui.result.dataset.id = String(m.id);
  ui.result.dataset.ms = m.ms.toFixed(0); // the network's time alone, for tests and benchmarks
  ui.result.alt = `${styleLabel(style)} cartoon of the photo`;
  ui.result.src = resultUrl;
  ui.caption.textContent = `${styleLabel(style)}, ${m.width}x${m.height}`;
  const base = (photo.name || 'photo').replace(/\.[^.]*$/, '');
  ui.download.href = resultUrl;
  const tag = style === 'custom' ? styleLabel(style).replace(/[^A-Za-z0-9_-]+/g, '_') : style;
  ui.download.download = `${base}-${tag}.png`;
  ui.download.hidden = false;
  setState('done', `Done in ${(m.ms / 1000).toFixed(1)} s on ${m.threads} thread${m.threads === 1 ? '' : 's'}.`);
}

function run() {
  seq++;
  app.dataset.run = String(seq);
  setState('cartoonizing', 'Reading the photo…');
  ui.progress.value = 0;
  ui.result.removeAttribute('src');
  delete ui.result.dataset.style;
  delete ui.result.dataset.ms;
  ui.download.hidden = true;
  ui.caption.textContent = 'Cartoon';
  if (!worker) startWorker();
  if (!ready) {
    setState('loading', 'Starting the engine…');
    return; // 'ready' calls run() again
  }
  const custom = ui.style.value === 'custom' && customWeights;
  worker.postMessage({
    type: 'run', id: seq, style: custom ? customName(customWeights) : ui.style.value,
    // a custom style's file is used as it is, whatever its precision
    precision: ui.fp16.checked && !custom ? 'fp16' : 'fp32',
    weights: custom ? customWeights : null,
    file: photo, maxSide: ui.fullsize.checked ? 0 : LONG_SIDE,
  });
}

function choose(file) {
  if (!file) return;
  photo = file;
  if (originalUrl) URL.revokeObjectURL(originalUrl);
  originalUrl = URL.createObjectURL(file);
  ui.original.src = originalUrl;
  ui.original.alt = file.name;
  run();
}

// A custom style: the option "custom" is added to the style list (or renamed) and chosen.
function chooseWeights(file) {
  if (!file) return;
  customWeights = file;
  let opt = ui.style.querySelector('option[value="custom"]');
  if (!opt) {
    opt = document.createElement('option');
    opt.value = 'custom';
    ui.style.append(opt);
  }
  opt.textContent = `${customName(file)} (your file)`;
  ui.style.value = 'custom';
  if (photo) run();
  else setState('idle', `Style ${customName(file)} chosen: now choose a photo.`);
}

function main() {
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(SIMD_PROBE)) {
    setState('error', 'This browser cannot run the engine: it lacks WebAssembly SIMD (Chrome 91, Firefox 89 and Safari 16.4 or later have it).');
    ui.retry.hidden = true;
    for (const el of [ui.style, ui.file, ui.fullsize, ui.fp16, ui.weights]) el.disabled = true;
    ui.engine.textContent = 'Engine: not available in this browser.';
    return;
  }
  ui.file.addEventListener('change', () => choose(ui.file.files[0]));
  ui.weights.addEventListener('change', () => chooseWeights(ui.weights.files[0]));
  for (const el of [ui.style, ui.fullsize, ui.fp16]) el.addEventListener('change', () => { if (photo) run(); });
  ui.fp16.addEventListener('change', sizeLabels);
  sizeLabels();
  ui.retry.addEventListener('click', () => { if (photo) run(); });
  // dropping anywhere on the page works; the drop zone shows where
  document.addEventListener('dragover', (e) => { e.preventDefault(); ui.drop.classList.add('over'); });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) ui.drop.classList.remove('over'); });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    ui.drop.classList.remove('over');
    const f = e.dataTransfer.files[0];
    if (f && /\.safetensors$/i.test(f.name)) chooseWeights(f); // a style, not a photo
    else choose(f);
  });
  startWorker();
}

main();
