// Loopback E2EE page: pc1 (sender, fake camera + mic) -> pc2 (receiver), both in this page,
// each with its own E2EE worker (= two clients with separate key stores).
// Query: api=script|streams  rx=right|wrong|none|late  fail=drop|pass  codec=default|vp8|h264
//        w,h,fps (camera constraints)  br (max video bitrate, bit/s)  e2ee=1|0
const q = new URLSearchParams(location.search);
const api = q.get('api') || 'script';
const rx = q.get('rx') || 'right';
const codec = q.get('codec') || 'vp8';
const e2ee = q.get('e2ee') !== '0';
const w = Number(q.get('w') || 1280), h = Number(q.get('h') || 720), fps = Number(q.get('fps') || 30);
const br = Number(q.get('br') || 2_500_000);

const log = (...a) => { document.getElementById('log').textContent += a.join(' ') + '\n'; };

function rpcWorker(worker) {
  let seq = 0; const pending = new Map();
  worker.addEventListener('message', (e) => { const p = pending.get(e.data.id); if (p) { pending.delete(e.data.id); e.data.error ? p.reject(new Error(e.data.error)) : p.resolve(e.data); } });
  return (msg, transfer = []) => new Promise((resolve, reject) => { const id = ++seq; pending.set(id, { resolve, reject }); worker.postMessage({ ...msg, id }, transfer); });
}

const sendWorker = new Worker('./e2ee-worker.js');
const recvWorker = new Worker('./e2ee-worker.js');
const sendRpc = rpcWorker(sendWorker), recvRpc = rpcWorker(recvWorker);

const caps = {
  scriptTransform: typeof RTCRtpScriptTransform !== 'undefined',
  createEncodedStreams: typeof RTCRtpSender !== 'undefined' && 'createEncodedStreams' in RTCRtpSender.prototype,
  sframeTransform: typeof SFrameTransform !== 'undefined',
  videoCodecs: RTCRtpSender.getCapabilities('video').codecs.map((c) => c.mimeType + (c.sdpFmtpLine ? ' ' + c.sdpFmtpLine : '')),
  audioCodecs: RTCRtpSender.getCapabilities('audio').codecs.map((c) => c.mimeType),
};

const pcConfig = api === 'streams' ? { encodedInsertableStreams: true } : {};
const pc1 = new RTCPeerConnection(pcConfig);
const pc2 = new RTCPeerConnection(pcConfig);
pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);

function attach(rpc, worker, senderOrReceiver, operation, kind) {
  if (api === 'script') {
    senderOrReceiver.transform = new RTCRtpScriptTransform(worker, { operation, kind });
  } else {
    const { readable, writable } = senderOrReceiver.createEncodedStreams();
    rpc({ type: 'streams', readable, writable, operation, kind }, [readable, writable]);
  }
}

const baseKey = crypto.getRandomValues(new Uint8Array(16));
const SENDER_KID = 7; // per-sender key id (e.g. MLS leaf index)

pc2.ontrack = (e) => {
  if (e.track.kind === 'video') document.getElementById('remote').srcObject = e.streams[0] || new MediaStream([e.track]);
  if (e2ee && rx !== 'none') attach(recvRpc, recvWorker, e.receiver, 'decrypt', e.track.kind);
};

async function start() {
  await recvRpc({ type: 'onFail', value: q.get('fail') || 'drop' });
  await recvRpc({ type: 'kfOnRecover', value: q.get('kf') === '1' });
  if (e2ee) await sendRpc({ type: 'setSendKey', kid: SENDER_KID, baseKey });
  if (rx === 'right') await recvRpc({ type: 'setRecvKey', kid: SENDER_KID, baseKey });
  if (rx === 'wrong') await recvRpc({ type: 'setRecvKey', kid: SENDER_KID, baseKey: crypto.getRandomValues(new Uint8Array(16)) });

  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: w, height: h, frameRate: fps }, audio: !q.get('noaudio') });
  for (const track of stream.getTracks()) {
    const tr = pc1.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings: track.kind === 'video' ? [{ maxBitrate: br }] : undefined });
    if (track.kind === 'video' && codec !== 'default') {
      const all = RTCRtpSender.getCapabilities('video').codecs;
      const want = all.filter((c) => c.mimeType.toLowerCase() === 'video/' + codec);
      const rest = all.filter((c) => /rtx|red|ulpfec/i.test(c.mimeType));
      tr.setCodecPreferences([...want, ...rest]);
    }
    if (track.kind === 'video' && q.get('dp') && q.get('dpWhen') === 'afterTransform') attach(sendRpc, sendWorker, tr.sender, 'encrypt', track.kind);
    if (track.kind === 'video' && q.get('dp') && (!q.get('dpWhen') || q.get('dpWhen') === 'afterTransform')) {
      const params = tr.sender.getParameters(); params.degradationPreference = q.get('dp'); await tr.sender.setParameters(params).catch((e) => log('dp', e));
    }
    if (track.kind === 'video' && q.get('sleepBeforeAttach')) await new Promise((r) => setTimeout(r, Number(q.get('sleepBeforeAttach'))));
    if (track.kind === 'video') window.trackSettings = track.getSettings();
    if (track.kind === 'video' && q.get('attachLate')) { const snd = tr.sender; setTimeout(() => { attach(sendRpc, sendWorker, snd, 'encrypt', 'video'); log('attached late'); }, Number(q.get('attachLate'))); continue; }
    if (e2ee && !(track.kind === 'video' && q.get('dpWhen') === 'afterTransform')) attach(sendRpc, sendWorker, tr.sender, 'encrypt', track.kind);
  }
  await pc1.setLocalDescription();
  await pc2.setRemoteDescription(pc1.localDescription);
  await pc2.setLocalDescription();
  await pc1.setRemoteDescription(pc2.localDescription);
  log('negotiated');
  if (q.get('dp') && q.get('dpWhen') === 'after') {
    const vs = pc1.getSenders().find((x) => x.track && x.track.kind === 'video');
    const params = vs.getParameters(); params.degradationPreference = q.get('dp'); await vs.setParameters(params).catch((e) => log('dp', e));
    log('dp set after negotiation');
  }
}

async function summary() {
  const out = { t: Date.now(), inbound: {}, outbound: {}, codecs: {} };
  const r2 = await pc2.getStats();
  r2.forEach((s) => {
    if (s.type === 'inbound-rtp') out.inbound[s.kind] = s;
    if (s.type === 'codec') out.codecs[s.id] = s.mimeType;
  });
  for (const k of Object.keys(out.inbound)) out.inbound[k].codec = out.codecs[out.inbound[k].codecId];
  const r1 = await pc1.getStats();
  r1.forEach((s) => { if (s.type === 'outbound-rtp') out.outbound[s.kind] = s; if (s.type === 'codec') out.codecs[s.id] = s.mimeType; });
  for (const k of Object.keys(out.outbound)) out.outbound[k].codec = out.codecs[out.outbound[k].codecId];
  out.trackSettings = window.trackSettings;
  out.log = document.getElementById('log').textContent;
  out.transforms = [...pc1.getSenders(), ...pc2.getReceivers()].map((x) => x.track && x.track.kind + ':' + !!x.transform);
  out.sendWorker = (await sendRpc({ type: 'stats' })).stats;
  out.recvWorker = (await recvRpc({ type: 'stats' })).stats;
  return out;
}

window.e2ee = {
  caps, start, summary,
  setRecvKey: (right) => recvRpc({ type: 'setRecvKey', kid: SENDER_KID, baseKey: right ? baseKey : crypto.getRandomValues(new Uint8Array(16)) }),
  setRecvKeyBytes: (k) => recvRpc({ type: 'setRecvKey', kid: SENDER_KID, baseKey: k }),
  clearRecvKeys: () => recvRpc({ type: 'clearRecvKeys' }),
  rotateSendKey: async () => { const k = crypto.getRandomValues(new Uint8Array(16)); await sendRpc({ type: 'setSendKey', kid: SENDER_KID, baseKey: k }); return k; },
  bench: (size, iters, clear) => sendRpc({ type: 'bench', size, iters, clear }),
  resetStats: async () => { await sendRpc({ type: 'resetStats' }); await recvRpc({ type: 'resetStats' }); },
  close: () => { pc1.close(); pc2.close(); sendWorker.terminate(); recvWorker.terminate(); },
};
