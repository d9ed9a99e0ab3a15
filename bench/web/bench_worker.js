// bench_worker.js: the browser benchmark's worker: runs the threaded wasm build of the
// engine as the app's worker does, and times cg_stylize alone (pixels already in the heap).
'use strict';

let engine = null;

self.onmessage = async (e) => {
  const m = e.data;
  try {
    if (m.type === 'init') {
      importScripts('cartoongan_mt.js');
      engine = await self.createCartoonGAN({
        mainScriptUrlOrBlob: new URL('cartoongan_mt.js', self.location.href).href,
        cgPoolSize: m.threads - 1,
      });
      const bytes = new Uint8Array(m.weights);
      const p = engine._cgw_alloc(bytes.length);
      engine.HEAPU8.set(bytes, p);
      const st = engine._cgw_load(p, bytes.length, 0, m.threads);
      engine._cgw_free(p);
      if (st) throw new Error(engine.UTF8ToString(engine._cgw_last_error()));
      self.postMessage({ kernel: engine.UTF8ToString(engine._cgw_kernel()) });
    } else if (m.type === 'run') {
      const n = m.size * m.size * 3;
      const pin = engine._cgw_alloc(n), pout = engine._cgw_alloc(n);
      engine.HEAPU8.set(m.rgb, pin);
      const ms = [];
      for (let r = 0; r <= m.runs; r++) { // run 0 warms up (the arena, the pool)
        const t0 = performance.now();
        const st = engine._cgw_stylize(pout, pin, m.size, m.size);
        if (st) throw new Error(engine.UTF8ToString(engine._cgw_last_error()));
        if (r > 0) ms.push(performance.now() - t0);
      }
      const out = engine.HEAPU8.slice(pout, pout + n);
      engine._cgw_free(pin);
      engine._cgw_free(pout);
      self.postMessage({ ms, out, threads: engine._cgw_threads_used() });
    }
  } catch (err) {
    self.postMessage({ error: err.message || String(err) });
  }
};
