#!/usr/bin/env node
// ort_bench.mjs: times the ONNX export of the generator (tools/export_onnx.py) in ONNX
// Runtime (npm onnxruntime-node, CPU), for bench/bench.sh.
//
//   node bench/ort_bench.mjs --model build/onnx/hayao.onnx --size 512x512
//        [--input x.f32] [--output y.f32] [--runs 3] [--threads 2]
//   node bench/ort_bench.mjs --check build/onnx/hayao.onnx
//
// --input: raw little-endian float32 [1,3,H,W], BGR in [-1,1] (bench.sh writes it with
// Python from the same PNG the other tools read); without it a deterministic synthetic
// image. --output: the tanh output, raw float32 [1,3,H',W'], for bench.sh's PSNR check.
// Runs once to warm up, then --runs timed runs of session.run() (intraOpNumThreads =
// --threads, interOpNumThreads 1, sequential execution, all graph optimizations), and
// prints the median and best time and the process's peak resident memory.
//
// --check: runs the model on the random inputs that export_onnx.py stored next to it
// (<model>.check.json) and compares with PyTorch's outputs; exits 1 above the tolerance.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';

const ortVersion = createRequire(import.meta.url)('onnxruntime-node/package.json').version;

function usage(msg) {
  if (msg) console.error(`ort_bench: ${msg}`);
  console.error('usage: node bench/ort_bench.mjs --model M.onnx --size WxH [--input x.f32] ' +
                '[--output y.f32] [--runs N] [--threads N]\n' +
                '       node bench/ort_bench.mjs --check M.onnx');
  process.exit(2);
}

function parseArgs(argv) {
  const a = { runs: 3, threads: 2 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    if (!['--model', '--size', '--input', '--output', '--runs', '--threads', '--check'].includes(k))
      usage(`unknown argument '${k}'`);
    if (v === undefined) usage(`${k} needs a value`);
    a[k.slice(2)] = v;
    i++;
  }
  for (const k of ['runs', 'threads']) {
    a[k] = Number(a[k]);
    if (!Number.isInteger(a[k]) || a[k] < 1) usage(`--${k} must be a positive integer`);
  }
  return a;
}

async function openSession(model, threads) {
  return ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

function readF32(path, count) {
  const b = readFileSync(path);
  if (b.length !== count * 4) throw new Error(`${path}: ${b.length} bytes, expected ${count * 4}`);
  const f = new Float32Array(count);
  new Uint8Array(f.buffer).set(b);
  return f;
}

async function check(model) {
  const base = model.replace(/\.onnx$/, '');
  const spec = JSON.parse(readFileSync(`${base}.check.json`, 'utf8'));
  const dir = dirname(model);
  const session = await openSession(model, 2);
  let worst = 0;
  for (const c of spec.cases) {
    const n = (s) => s.reduce((p, q) => p * q, 1);
    const x = new ort.Tensor('float32', readF32(join(dir, c.input), n(c.input_shape)), c.input_shape);
    const want = readF32(join(dir, c.output), n(c.output_shape));
    const y = (await session.run({ input: x })).output;
    if (y.dims.join('x') !== c.output_shape.join('x'))
      throw new Error(`output shape ${y.dims} != ${c.output_shape}`);
    let d = 0;
    for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(y.data[i] - want[i]));
    console.log(`ONNX Runtime ${ortVersion} vs PyTorch, input ${c.input_shape.join('x')}: max |diff| ${d.toExponential(2)}`);
    worst = Math.max(worst, d);
  }
  if (!(worst <= spec.tolerance)) {
    console.error(`ort_bench: ${model}: differs from PyTorch by ${worst} (tolerance ${spec.tolerance})`);
    process.exit(1);
  }
}

function synthetic(w, h) {
  // Smooth ramps plus a little texture, BGR in [-1,1]; deterministic.
  const x = new Float32Array(3 * w * h);
  let s = 12345;
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < h; y++)
      for (let i = 0; i < w; i++) {
        s = (s * 1103515245 + 12345) >>> 0;
        const v = (c * 80 + (i * 255) / w + (y * 128) / h + (s >>> 28)) % 256;
        x[(c * h + y) * w + i] = v / 127.5 - 1;
      }
  return x;
}

async function bench(a) {
  if (!a.model || !a.size) usage('--model and --size are required');
  const m = /^(\d+)x(\d+)$/.exec(a.size);
  if (!m) usage(`invalid --size '${a.size}'`);
  const w = Number(m[1]), h = Number(m[2]);
  const t0 = performance.now();
  const session = await openSession(a.model, a.threads);
  const loadS = (performance.now() - t0) / 1e3;
  const data = a.input ? readF32(a.input, 3 * w * h) : synthetic(w, h);
  const feeds = { input: new ort.Tensor('float32', data, [1, 3, h, w]) };
  let out = (await session.run(feeds)).output; // warm-up
  if (a.output) writeFileSync(a.output, new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  out = null;
  const times = [];
  for (let k = 0; k < a.runs; k++) {
    const t = performance.now();
    await session.run(feeds);
    times.push((performance.now() - t) / 1e3);
  }
  times.sort((p, q) => p - q);
  const n = times.length;
  const med = n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  console.log(`ONNX Runtime ${ortVersion}, ${w}x${h}, ${a.threads} threads: median ${med.toFixed(3)} s ` +
              `over ${n} runs (min ${times[0].toFixed(3)} s; session load ${loadS.toFixed(2)} s)`);
  console.log(`peak RSS (whole node process) ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
  await session.release();
}

const args = parseArgs(process.argv.slice(2));
try {
  if (args.check) await check(args.check);
  else await bench(args);
} catch (e) {
  console.error(`ort_bench: ${e.message ?? e}`);
  process.exit(1);
}
