// E2EE frame transform worker (prototype). SFrame-style (RFC 9605) per-frame AES-128-GCM:
//
//   out = clear codec bytes || SFrame header (config byte, KID, CTR) || AES-GCM(ciphertext||tag)
//
// clear codec bytes: VP8 key frame 10, VP8 delta frame 3, Opus 1 (TOC), so that an SFU and
// the receiving depacketizer still see the VP8 payload header. AAD = clear bytes || header.
// Keys: sframe_key/salt = HKDF(base_key, "SFrame 1.0 Secret key|salt " || KID(u64) || suite(u16)),
// cipher suite 0x0004 AES_128_GCM_SHA256_128. Nonce = salt XOR CTR (big-endian, 12 bytes).
//
// Works with both APIs: RTCRtpScriptTransform (onrtctransform) and legacy
// createEncodedStreams (streams posted in a message).

const SUITE = 0x0004;
const te = new TextEncoder();

/** @type {{kid:number, key:CryptoKey, salt:Uint8Array, ctr:bigint}|null} */
let sendState = null;
/** kid -> {key, salt} */
const recvKeys = new Map();
let onFail = 'drop';
let kfOnRecover = false; // ask the sender for a key frame when decryption resumes after failures
let needKf = false; // 'drop' | 'pass' (hand the undecryptable frame to the decoder as is)

const stats = {
  enc: { n: 0, bytes: 0, cryptoMs: 0, totalMs: 0, max: 0, key: 0 },
  dec: { n: 0, bytes: 0, cryptoMs: 0, totalMs: 0, max: 0, fail: 0, nokey: 0, key: 0 },
  firstDecAt: 0,
};

function kidCtrInfo(label, kid) {
  const info = new Uint8Array(label.length + 10);
  info.set(te.encode(label), 0);
  const dv = new DataView(info.buffer);
  dv.setBigUint64(label.length, BigInt(kid));
  dv.setUint16(label.length + 8, SUITE);
  return info;
}

async function deriveKeys(baseKey, kid) {
  const ikm = await crypto.subtle.importKey('raw', baseKey, 'HKDF', false, ['deriveBits']);
  const hkdf = (info, bits) => crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info }, ikm, bits);
  const keyBytes = await hkdf(kidCtrInfo('SFrame 1.0 Secret key ', kid), 128);
  const salt = new Uint8Array(await hkdf(kidCtrInfo('SFrame 1.0 Secret salt ', kid), 96));
  const key = await crypto.subtle.importKey('raw', keyBytes, 'AES-GCM', false, ['encrypt', 'decrypt']);
  return { key, salt };
}

/** Minimal big-endian encoding of a non-negative integer (at least 1 byte). */
function encUint(v) {
  const out = [];
  let x = BigInt(v);
  do { out.unshift(Number(x & 0xffn)); x >>= 8n; } while (x > 0n);
  return out;
}

function sframeHeader(kid, ctr) {
  const bytes = [0];
  let cfg = 0;
  if (kid < 8) cfg |= kid << 4; else { const k = encUint(kid); cfg |= 0x80 | ((k.length - 1) << 4); bytes.push(...k); }
  if (ctr < 8n) cfg |= Number(ctr); else { const c = encUint(ctr); cfg |= 0x08 | (c.length - 1); bytes.push(...c); }
  bytes[0] = cfg;
  return Uint8Array.from(bytes);
}

function parseHeader(buf, off) {
  const cfg = buf[off];
  let p = off + 1;
  let kid, ctr;
  if (cfg & 0x80) { const n = ((cfg >> 4) & 7) + 1; kid = 0; for (let i = 0; i < n; i++) kid = kid * 256 + buf[p++]; } else kid = (cfg >> 4) & 7;
  if (cfg & 0x08) { const n = (cfg & 7) + 1; ctr = 0n; for (let i = 0; i < n; i++) ctr = (ctr << 8n) | BigInt(buf[p++]); } else ctr = BigInt(cfg & 7);
  return { kid, ctr, len: p - off };
}

function nonce(salt, ctr) {
  const n = salt.slice();
  let x = ctr;
  for (let i = 11; i >= 4 && x > 0n; i--) { n[i] ^= Number(x & 0xffn); x >>= 8n; }
  return n;
}

function clearBytes(frame, kind) {
  if (kind === 'audio') return 1;
  return frame.type === 'key' ? 10 : 3; // VP8 payload header (RFC 7741 §4.3); 'empty' frames have no data
}

async function encryptFrame(frame, controller, kind) {
  const t0 = performance.now();
  const data = new Uint8Array(frame.data);
  if (!sendState || data.length === 0) { controller.enqueue(frame); return; }
  const nClear = Math.min(clearBytes(frame, kind), data.length);
  const ctr = sendState.ctr++;
  const hdr = sframeHeader(sendState.kid, ctr);
  const aad = new Uint8Array(nClear + hdr.length);
  aad.set(data.subarray(0, nClear)); aad.set(hdr, nClear);
  const t1 = performance.now();
  const ct = new Uint8Array(await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce(sendState.salt, ctr), additionalData: aad, tagLength: 128 },
    sendState.key, data.subarray(nClear)));
  const t2 = performance.now();
  const out = new Uint8Array(aad.length + ct.length);
  out.set(aad); out.set(ct, aad.length);
  frame.data = out.buffer;
  controller.enqueue(frame);
  const s = stats.enc, dt = performance.now() - t0;
  s.n++; s.bytes += data.length; s.cryptoMs += t2 - t1; s.totalMs += dt; s.max = Math.max(s.max, dt);
  if (frame.type === 'key') s.key++;
}

async function decryptFrame(frame, controller, kind) {
  const t0 = performance.now();
  const data = new Uint8Array(frame.data);
  if (data.length === 0) { controller.enqueue(frame); return; }
  const s = stats.dec;
  const nClear = Math.min(clearBytes(frame, kind), data.length);
  let h;
  try { h = parseHeader(data, nClear); } catch { h = null; }
  const keys = h && recvKeys.get(h.kid);
  if (!keys) { s.nokey++; needKf = true; if (onFail === 'pass') controller.enqueue(frame); return; }
  const aadLen = nClear + h.len;
  try {
    const t1 = performance.now();
    const pt = new Uint8Array(await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: nonce(keys.salt, h.ctr), additionalData: data.subarray(0, aadLen), tagLength: 128 },
      keys.key, data.subarray(aadLen)));
    const t2 = performance.now();
    const out = new Uint8Array(nClear + pt.length);
    out.set(data.subarray(0, nClear)); out.set(pt, nClear);
    frame.data = out.buffer;
    controller.enqueue(frame);
    const dt = performance.now() - t0;
    s.n++; s.bytes += out.length; s.cryptoMs += t2 - t1; s.totalMs += dt; s.max = Math.max(s.max, dt);
    if (frame.type === 'key') s.key++;
    if (!stats.firstDecAt) stats.firstDecAt = Date.now();
    if (needKf && kind === 'video') {
      needKf = false;
      if (kfOnRecover && controller.transformer && controller.transformer.sendKeyFrameRequest) {
        stats.kfRequests = (stats.kfRequests || 0) + 1;
        controller.transformer.sendKeyFrameRequest().catch((e) => { stats.kfRequestError = String(e); });
      }
    }
  } catch {
    s.fail++;
    needKf = true;
    if (onFail === 'pass') controller.enqueue(frame);
  }
}

function pipe(readable, writable, operation, kind, transformer) {
  const fn = operation === 'encrypt' ? encryptFrame : decryptFrame;
  if (transformer) stats.transformerApi = { generateKeyFrame: typeof transformer.generateKeyFrame, sendKeyFrameRequest: typeof transformer.sendKeyFrameRequest };
  readable
    .pipeThrough(new TransformStream({ transform: (frame, controller) => { controller.transformer = transformer; return fn(frame, controller, kind); } }))
    .pipeTo(writable)
    .catch((e) => { stats.pipeError = String(e); });
}

// Standard API: new RTCRtpScriptTransform(worker, {operation, kind})
self.onrtctransform = (event) => {
  const t = event.transformer;
  pipe(t.readable, t.writable, t.options.operation, t.options.kind, t);
};

self.onmessage = async (e) => {
  const m = e.data;
  try {
    switch (m.type) {
      case 'streams': pipe(m.readable, m.writable, m.operation, m.kind); break; // legacy API
      case 'setSendKey': sendState = { kid: m.kid, ...(await deriveKeys(m.baseKey, m.kid)), ctr: 0n }; break;
      case 'setRecvKey': recvKeys.set(m.kid, await deriveKeys(m.baseKey, m.kid)); break;
      case 'clearRecvKeys': recvKeys.clear(); break;
      case 'onFail': onFail = m.value; break;
      case 'kfOnRecover': kfOnRecover = m.value; break;
      case 'stats': break;
      case 'resetStats':
        for (const k of ['n', 'bytes', 'cryptoMs', 'totalMs', 'max', 'key', 'fail', 'nokey']) { if (k in stats.enc) stats.enc[k] = 0; if (k in stats.dec) stats.dec[k] = 0; }
        break;
      case 'bench': self.postMessage({ id: m.id, result: await bench(m) }); return;
      default: throw new Error('unknown message ' + m.type);
    }
    self.postMessage({ id: m.id, stats });
  } catch (err) {
    self.postMessage({ id: m.id, error: String(err) });
  }
};

/** Synthetic benchmark: encrypt+decrypt `iters` frames of `size` bytes with the same code path. */
async function bench({ size, iters, clear }) {
  const st = await deriveKeys(crypto.getRandomValues(new Uint8Array(16)), 1);
  const data = new Uint8Array(size);
  for (let o = 0; o < size; o += 65536) crypto.getRandomValues(data.subarray(o, Math.min(size, o + 65536)));
  let ctr = 0n, encMs = 0, decMs = 0;
  for (let i = 0; i < iters; i++) {
    const hdr = sframeHeader(1, ctr);
    const aad = new Uint8Array(clear + hdr.length); aad.set(data.subarray(0, clear)); aad.set(hdr, clear);
    const iv = nonce(st.salt, ctr++);
    const t0 = performance.now();
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, st.key, data.subarray(clear));
    const t1 = performance.now();
    await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: aad }, st.key, ct);
    decMs += performance.now() - t1; encMs += t1 - t0;
  }
  return { size, iters, encUsPerFrame: (encMs * 1000) / iters, decUsPerFrame: (decMs * 1000) / iters };
}
