// Pairwise X25519 sender-key distribution cost (the non-MLS alternative), WebCrypto only.
// One rotation by one sender = 1 ephemeral X25519 keygen + (N-1) x [deriveBits + HKDF + AES-GCM wrap of a 16-byte key].
// One receiver, per rotated sender = deriveBits + HKDF + AES-GCM unwrap.
export async function runPairwise(n = 100) {
  const s = crypto.subtle;
  const out = { n, available: {} };
  for (const alg of ['X25519', 'Ed25519', 'X448', 'Ed448']) {
    try { await s.generateKey({ name: alg }, true, alg.startsWith('X') ? ['deriveBits'] : ['sign', 'verify']); out.available[alg] = true; }
    catch (e) { out.available[alg] = String(e.name || e); }
  }
  // static identity keys of the N-1 other members (their public keys are known)
  const peers = [];
  for (let i = 0; i < n - 1; i++) peers.push(await s.generateKey({ name: 'X25519' }, true, ['deriveBits']));
  const senderKey = crypto.getRandomValues(new Uint8Array(16));
  const info = new TextEncoder().encode('conclave sender key wrap');
  const wrapped = [];
  let t = performance.now();
  const eph = await s.generateKey({ name: 'X25519' }, true, ['deriveBits']);
  const ephPub = new Uint8Array(await s.exportKey('raw', eph.publicKey));
  for (const p of peers) {
    const shared = await s.deriveBits({ name: 'X25519', public: p.publicKey }, eph.privateKey, 256);
    const ikm = await s.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
    const kek = await s.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: ephPub, info }, ikm, { name: 'AES-GCM', length: 128 }, false, ['encrypt']);
    wrapped.push(new Uint8Array(await s.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, kek, senderKey)));
  }
  out.senderRotateMs = performance.now() - t;
  const ephPubKey = await s.importKey('raw', ephPub, { name: 'X25519' }, true, []);
  t = performance.now();
  const reps = 98;
  for (let i = 0; i < reps; i++) {
    const p = peers[i % peers.length];
    const shared = await s.deriveBits({ name: 'X25519', public: ephPubKey }, p.privateKey, 256);
    const ikm = await s.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
    const kek = await s.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: ephPub, info }, ikm, { name: 'AES-GCM', length: 128 }, false, ['decrypt']);
    await s.decrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, kek, wrapped[i % wrapped.length]);
  }
  out.receiverUnwrapAllOthersMs = performance.now() - t; // 98 rotated senders after a leave
  // Ed25519 signatures: each rotation message must be signed (sender auth); receivers verify 98
  const sig = await s.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const msg = new Uint8Array(8 + wrapped.length * 32);
  t = performance.now(); const sg = await s.sign('Ed25519', sig.privateKey, msg); out.signMs = performance.now() - t;
  t = performance.now(); for (let i = 0; i < 98; i++) await s.verify('Ed25519', sig.publicKey, sg, msg); out.verify98Ms = performance.now() - t;
  out.perClientAfterLeaveMs = out.senderRotateMs + out.receiverUnwrapAllOthersMs + out.signMs + out.verify98Ms;
  out.wrappedEntryBytes = 4 + wrapped[0].length; // recipient index + ciphertext(16)+tag(16)
  out.messagesThroughServerPerLeave = `${n - 1} senders x ${n - 2} recipients = ${(n - 1) * (n - 2)} wrapped keys`;
  for (const k of Object.keys(out)) if (typeof out[k] === 'number') out[k] = Math.round(out[k] * 10) / 10;
  return out;
}
