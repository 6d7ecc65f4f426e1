// charrnn.js: a charrnn model in the browser, on charrnn's WebAssembly runtime (SIMD128).
// The API follows ml5.js CharRNN, so that sketches port by changing one line:
//
//   import * as charrnn from "./charrnn.js";
//   const m = await charrnn.load("model/");                 // charrnn.wasm + model.bin
//   const {sample} = await m.generate({seed: "ROMEO:", length: 200, temperature: 0.8});
//   await m.feed("ROMEO:");  const {sample: c, probabilities} = await m.predict(0.8);
//   m.reset();
//   for await (const piece of m.stream({seed: "ROMEO:", length: 500})) out.append(piece);
//
// As in ml5, `seed` is the prompt text (`prompt` is the same); the random seed is
// `randomSeed` (0 to 2^64-1: a number, a BigInt or a decimal string). The sampler is
// charrnn's (xoshiro256** seeded through splitmix64, its temperature / top-k / top-p rule
// and its exp), so `generate({seed: P, length: N, temperature: T, randomSeed: S})` writes
// P + sample == the text of `charrnn sample --prime P --length N --temp T --seed S`.
// Written by `charrnn export --format web`; the same code runs inside `--format html`.

export class CharRNNError extends Error {
  constructor(message) { super(message); this.name = "CharRNNError"; }
}

const MAGIC = "CHRNNWEB";
// (module (func (result v128) v128.const i32x4 0 0 0 0)): valid only with SIMD128
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3,
  2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);

export function simdSupported() {
  return typeof WebAssembly === "object" && WebAssembly.validate(SIMD_PROBE);
}

async function fetchBytes(url, what) {
  let r;
  try { r = await fetch(url); } catch (e) {
    throw new CharRNNError(`cannot fetch ${what} ${url}: ${e.message}` +
      (location.protocol === "file:" ? " (pages opened from file:// cannot fetch: serve the " +
        "folder, e.g. python3 -m http.server, or use charrnn export --format html)" : ""));
  }
  if (!r.ok) throw new CharRNNError(`cannot fetch ${what} ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

// load(source, [callback]): source is a folder URL ("model/", with charrnn.wasm and
// model.bin), or {wasm, model} as bytes (ArrayBuffer / Uint8Array). Options: {randomSeed}.
export async function load(source = "./", options = {}, callback) {
  if (typeof options === "function") [callback, options] = [options, {}];
  const run = async () => {
    if (!simdSupported()) {
      throw new CharRNNError("this browser cannot run WebAssembly SIMD128, which charrnn " +
        "needs: use Chrome/Edge >= 91, Firefox >= 89 or Safari >= 16.4");
    }
    let wasm, model;
    if (typeof source === "string" || source instanceof URL) {
      const base = new URL(String(source).endsWith("/") ? source : source + "/", location.href);
      [wasm, model] = await Promise.all([fetchBytes(new URL("charrnn.wasm", base), "the runtime"),
        fetchBytes(new URL("model.bin", base), "the weights")]);
    } else if (source && source.wasm && source.model) {
      ({wasm, model} = source);
    } else {
      throw new CharRNNError("load() takes a folder URL or {wasm, model} bytes");
    }
    const {instance} = await WebAssembly.instantiate(wasm, {});
    return new CharRNN(instance.exports, new Uint8Array(model.buffer || model,
      model.byteOffset || 0, model.byteLength), options);
  };
  try {
    const m = await run();
    if (callback) callback(null, m);
    return m;
  } catch (e) {
    if (callback) { callback(e); return undefined; }
    throw e;
  }
}

function readHeader(bytes) {
  const magic = String.fromCharCode(...bytes.subarray(0, 8));
  if (bytes.length < 16 || magic !== MAGIC) {
    throw new CharRNNError("not charrnn web weights (model.bin written by charrnn export " +
      "--format web)");
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true), n = dv.getUint32(12, true);
  if (version !== 1) throw new CharRNNError(`weights format ${version}; this runtime reads 1`);
  const head = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + n)));
  const start = (16 + n + 15) & ~15;
  return [head, start];
}

const LOAD_ERRORS = {"-1": "not charrnn weights", "-2": "another weights version",
  "-3": "bad model sizes", "-4": "truncated or corrupt weights", "-5": "out of memory"};

function toSeed(s) {
  let v;
  try { v = typeof s === "bigint" ? s : BigInt(typeof s === "number" ? s : String(s).trim()); }
  catch (e) { v = -1n; }
  if (typeof s === "number" && !Number.isSafeInteger(s)) v = -1n;
  if (v < 0n || v >= (1n << 64n)) {
    throw new CharRNNError(`randomSeed must be a whole number from 0 to 2^64-1, got ${s}`);
  }
  return v;
}

function randomSeed() {
  const w = new Uint32Array(2);
  crypto.getRandomValues(w);
  return (BigInt(w[1]) << 32n) | BigInt(w[0]);
}

const yieldToBrowser = () => new Promise((resolve) => {
  const ch = new MessageChannel();   // unlike setTimeout(0), never clamped to 4 ms
  ch.port1.onmessage = () => resolve();
  ch.port2.postMessage(0);
});

export class CharRNN {
  constructor(wasm, bytes, options = {}) {
    const [head, start] = readHeader(bytes);
    this.wasm = wasm;
    this.info = head;              // cell, layers, hidden, embed, vocab_size, int8, note...
    this.bytes = head.bytes;       // a byte-level model: ids are bytes of UTF-8
    this.vocab = head.vocab.map((c) => head.bytes ? c : String.fromCodePoint(c));
    this.index = new Map(head.vocab.map((c, i) => [c, i]));
    this.startId = head.start;
    const n = bytes.length - start, ptr = wasm.cr_alloc(n);
    if (!ptr) throw new CharRNNError(`out of memory for ${n} bytes of weights`);
    new Uint8Array(wasm.memory.buffer, ptr, n).set(bytes.subarray(start));
    const rc = wasm.cr_load(ptr, n);
    if (rc !== 0) throw new CharRNNError(`cannot load the weights: ${LOAD_ERRORS[rc] || rc}`);
    this.vocabSize = this.vocab.length;
    this.ready = true;             // ml5's property; load() resolves once it is
    this.pending = null;           // the last input id not yet stepped
    this.logits = null;            // the logits after the whole input, once computed
    this.randomSeed(options.randomSeed ?? randomSeed());
  }

  // ---- text <-> ids ------------------------------------------------------------------
  // ids of text; CharRNNError naming every character the vocabulary lacks
  encode(text, what = "the prompt") {
    if (typeof text !== "string") throw new CharRNNError(`${what} must be a string`);
    const units = this.bytes ? new TextEncoder().encode(text) : Array.from(text, (c) => c.codePointAt(0));
    const ids = [], missing = new Set();
    for (const u of units) {
      const id = this.index.get(u);
      if (id === undefined) missing.add(u); else ids.push(id);
    }
    if (missing.size) {
      const list = [...missing].map((u) => {
        const hex = "U+" + u.toString(16).toUpperCase().padStart(4, "0");
        return u < 32 || u === 127 ? hex : `"${String.fromCodePoint(u)}" (${hex})`;
      });
      throw new CharRNNError(`${what} has ${missing.size === 1 ? "a character" :
        missing.size + " characters"} outside the model's vocabulary: ${list.join(", ")}`);
    }
    return ids;
  }

  decoder() {   // ids -> text, a piece at a time (UTF-8 across pieces for byte models)
    if (!this.bytes) return {push: (ids) => String.fromCodePoint(...ids.map((i) => this.vocab[i].codePointAt(0))), end: () => ""};
    const d = new TextDecoder("utf-8");
    return {push: (ids) => d.decode(Uint8Array.from(ids, (i) => this.vocab[i]), {stream: true}),
      end: () => d.decode()};
  }

  // ---- state ---------------------------------------------------------------------------
  randomSeed(seed) {
    const s = toSeed(seed);
    this.seedUsed = s;
    this.wasm.cr_seed(Number(s & 0xffffffffn), Number(s >> 32n));
    return this;
  }

  reset() {
    this.wasm.cr_reset();
    this.pending = null;
    this.logits = null;
    return this;
  }

  // read text into the state (ml5's feed); nothing is generated
  async feed(text, callback) {
    try {
      for (const id of this.encode(text, "the text to feed")) this._input(id);
      if (callback) callback(null);
    } catch (e) { if (callback) callback(e); else throw e; }
  }

  _input(id) {
    if (this.pending !== null) this.wasm.cr_feed(this.pending);
    this.pending = id;
    this.logits = null;
  }

  _ensureLogits() {
    if (this.logits) return;
    const ptr = this.wasm.cr_step(this.pending ?? this.startId);
    this.logits = new Float32Array(this.wasm.memory.buffer, ptr, this.vocab.length).slice();
    this.pending = null;
  }

  // the next character's distribution after what was fed, and one draw from it; the state
  // does not move (feed the sample to go on), as in ml5
  async predict(temperature = 0.5, callback) {
    if (typeof temperature === "function") [callback, temperature] = [temperature, 0.5];
    try {
      const t = checkOptions({temperature}).temperature;
      this._ensureLogits();
      const w = this.wasm;
      new Float32Array(w.memory.buffer, w.cr_logits(), this.vocab.length).set(this.logits);
      w.cr_options(t, 0, 1);
      const id = w.cr_sample();
      const probs = new Float32Array(w.memory.buffer, w.cr_probs(t), this.vocab.length);
      const char = (i) => this.bytes ? String.fromCharCode(this.vocab[i]) : this.vocab[i];
      // ml5's shape: [{char, probability}] in vocabulary order
      const probabilities = Array.from(probs, (p, i) => ({char: char(i), probability: p}));
      const out = {sample: char(id), id, probabilities};
      if (callback) callback(null, out);
      return out;
    } catch (e) { if (callback) { callback(e); return undefined; } throw e; }
  }

  // ---- generation ----------------------------------------------------------------------
  // An async iterator of text pieces: the prompt first, then the generated text as it is
  // made (the browser gets control back between pieces). Options: seed/prompt, length,
  // temperature, topK, topP, randomSeed, stateful (go on from the current state).
  async *stream(options = {}) {
    const o = checkOptions(options);
    const ids = this.encode(o.prompt);
    if (o.randomSeed !== undefined) this.randomSeed(o.randomSeed);
    if (!o.stateful) this.reset();
    for (const id of ids) this._input(id);
    const w = this.wasm, dec = this.decoder();
    if (o.prompt) yield o.prompt;
    w.cr_options(o.temperature, o.topK, o.topP);
    let left = o.length, cur, chunk = 8;
    if (this.logits) {              // stateful, after predict: draw from those logits
      new Float32Array(w.memory.buffer, w.cr_logits(), this.vocab.length).set(this.logits);
      cur = w.cr_sample();
      left -= 1;
      const piece = dec.push([cur]);
      if (piece) yield piece;
    } else {
      cur = this.pending ?? this.startId;
    }
    this.logits = null;
    this.pending = null;
    try {
      while (left > 0) {
        const k = Math.min(left, chunk, 4096), t0 = performance.now();
        cur = w.cr_generate(cur, k);
        this.pending = cur;
        const got = Array.from(new Int32Array(w.memory.buffer, w.cr_ids(), k));
        left -= k;
        const piece = dec.push(got);
        if (piece) yield piece;
        if (performance.now() - t0 < 8) chunk *= 2;   // about 10 ms of work per piece
        await yieldToBrowser();
      }
      const tail = dec.end();
      if (tail) yield tail;
    } finally {
      this.pending = cur;
    }
  }

  // {sample}: the generated text (without the prompt, as ml5); ml5's generate
  async generate(options = {}, callback) {
    try {
      const pieces = [];
      let first = true;
      const o = checkOptions(options);
      for await (const p of this.stream(options)) {
        if (first && o.prompt) { first = false; continue; }
        first = false;
        pieces.push(p);
      }
      const out = {sample: pieces.join(""), seed: o.prompt, randomSeed: String(this.seedUsed)};
      if (callback) callback(null, out);
      return out;
    } catch (e) { if (callback) { callback(e); return undefined; } throw e; }
  }
}

// The options of generate/stream, checked: one-line CharRNNError for a bad value. The
// defaults are ml5's (length 20, temperature 0.5), the prompt defaults to "" (the model
// starts on "\n", as charrnn sample does); temperature 0 is greedy (charrnn's rule).
export function checkOptions(o = {}) {
  if (typeof o !== "object" || o === null) throw new CharRNNError("options must be an object");
  const num = (v) => typeof v === "number" ? v : (typeof v === "string" && v.trim() !== "" ? Number(v) : NaN);
  const prompt = o.seed ?? o.prompt ?? "";
  const out = {prompt, stateful: !!o.stateful, randomSeed: o.randomSeed};
  const t = num(o.temperature ?? 0.5);
  if (!Number.isFinite(t) || t < 0) {
    throw new CharRNNError(`temperature must be a number >= 0 (0 = greedy), got ${o.temperature}`);
  }
  const len = num(o.length ?? 20);
  if (!Number.isInteger(len) || len < 1 || len > 1e9) {
    throw new CharRNNError(`length must be a whole number from 1 to 10^9, got ${o.length}`);
  }
  const k = o.topK === undefined || o.topK === null || o.topK === "" ? 0 : num(o.topK);
  if (!Number.isInteger(k) || k < 0) {
    throw new CharRNNError(`topK must be a whole number >= 1 (or 0 for no limit), got ${o.topK}`);
  }
  const p = o.topP === undefined || o.topP === null || o.topP === "" ? 1 : num(o.topP);
  if (!(p > 0 && p <= 1)) throw new CharRNNError(`topP must be a number in (0, 1], got ${o.topP}`);
  if (typeof prompt !== "string") throw new CharRNNError("seed (the prompt) must be a string");
  if (o.randomSeed !== undefined && o.randomSeed !== null && o.randomSeed !== "") toSeed(o.randomSeed);
  else out.randomSeed = undefined;
  return Object.assign(out, {temperature: t, length: len, topK: k, topP: p});
}
