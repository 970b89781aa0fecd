// The livetape console: live streams with their stats and players, recordings with a
// VOD player, jobs, and the push-URL generator, all over /api/v1.
import { api, apiKey, setAPIKey, explain, isAuthError } from './api.js';
import { Player } from './player.js';

const $ = (id) => document.getElementById(id);

// el builds an element; children are nodes or text (never parsed as HTML).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function button(label, action, onclick, title) {
  return el('button', { type: 'button', 'data-action': action, onclick, title }, label);
}

// ---- banner: the one place that says why the API cannot be used ----

function showBanner(msg) {
  $('banner').textContent = msg;
  $('banner').hidden = !msg;
}

// report shows err in the banner (auth problems, which every section shares) or in
// the section's own status line.
function report(err, where) {
  const msg = explain(err);
  if (isAuthError(err) || !where) showBanner(msg);
  else where.textContent = msg;
}

// ---- formatting ----

const fmt = {
  num: (v, digits = 0) => (v === undefined || v === null ? '' : Number(v).toFixed(digits)),
  bytes(n) {
    if (!n) return '0 B';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
    return (n / 10 ** (3 * i)).toFixed(i ? 1 : 0) + ' ' + units[i];
  },
  secs(s) {
    s = Math.round(s || 0);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (x) => String(x).padStart(2, '0');
    return (h ? h + ':' + pad(m) : m) + ':' + pad(s % 60);
  },
  time: (t) => (t ? new Date(t).toLocaleString() : ''),
};

// ---- live streams ----

const livePlayer = new Player($('live-video'), (msg) => { $('live-error').textContent = msg; });

// playURLs returns where to play a stream: signed URLs when the server signs (a play
// key may be required), else the plain ones of this host.
async function playURLs(app, id) {
  try {
    const u = await api('POST', '/api/v1/sign', { app, stream_id: id, ttl: 3600 });
    return { flv: u.play_flv, hls: u.play_hls };
  } catch (err) {
    if (isAuthError(err)) throw err;
    return { flv: `/${app}/${id}.flv`, hls: `/${app}/${id}.m3u8` };
  }
}

async function playLive(s, kind) {
  $('live-error').textContent = '';
  $('live-title').textContent = `${s.app}/${s.stream_id} (${kind === 'flv' ? 'HTTP-FLV' : 'HLS'})`;
  $('live-player').hidden = false;
  $('live-player').dataset.stream = `${s.app}/${s.stream_id}`;
  try {
    const urls = await playURLs(s.app, s.stream_id);
    livePlayer.play(urls[kind], kind, true);
  } catch (err) {
    report(err, $('live-error'));
  }
}

async function control(method, path, body) {
  $('streams-error').textContent = '';
  try {
    await api(method, path, body);
  } catch (err) {
    report(err, $('streams-error'));
  }
  refreshStreams();
}

function kick(s) {
  const ban = prompt(`Kick ${s.app}/${s.stream_id}. Refuse new pushes of this id for how many seconds? (0: none)`, '0');
  if (ban === null) return;
  control('DELETE', `/api/v1/streams/${s.app}/${s.stream_id}?ban=${encodeURIComponent(ban.trim() || '0')}`);
}

function startRecording(s) {
  const formats = $('rec-formats').value.split('|');
  const interval = parseInt($('rec-interval').value, 10) || 0;
  control('POST', `/api/v1/streams/${s.app}/${s.stream_id}/record`, { formats, interval });
}

function streamRow(s) {
  const key = `${s.app}/${s.stream_id}`;
  const v = s.video;
  const a = s.audio;
  const viewers = s.viewers || {};
  const rec = s.recording || [];
  const actions = [
    button('FLV', 'play-flv', () => playLive(s, 'flv'), 'play HTTP-FLV here'),
    button('HLS', 'play-hls', () => playLive(s, 'hls'), 'play HLS here'),
    rec.length
      ? button('Stop rec', 'record-stop', () => control('DELETE', `/api/v1/streams/${key}/record`), 'close the open fragment and stop recording')
      : button('Record', 'record-start', () => startRecording(s), 'record as set above'),
    button('Kick', 'kick', () => kick(s), 'drop the publisher'),
    button('Recordings', 'recordings', () => showRecordingsOf(s.app, s.stream_id)),
  ];
  return el('tr', { 'data-stream': key },
    el('td', {}, key),
    el('td', {}, s.node_id, s.remote ? ' (remote)' : ''),
    el('td', { title: s.publisher ? s.publisher.address : '' }, s.publisher ? `${s.publisher.client_ip} ${s.publisher.software}` : ''),
    el('td', {}, v ? `${v.codec} ${v.width}×${v.height} ${fmt.num(v.fps, 1)} fps ${fmt.num(v.kbps)} kb/s` : ''),
    el('td', {}, a ? `${a.codec} ${a.sample_rate / 1000} kHz ${fmt.num(a.kbps)} kb/s` : ''),
    el('td', { class: 'num' }, v ? fmt.num(v.keyframe_interval, 1) + ' s' : ''),
    el('td', { class: 'num', title: Object.entries(viewers).map(([p, n]) => `${p}: ${n}`).join(', ') }, viewers.total ?? 0),
    el('td', { class: 'num' }, fmt.bytes(s.bytes_in)),
    el('td', {}, rec.map((r) => `${r.format} ${fmt.secs(r.seconds)}`).join(', ')),
    el('td', { class: 'num' }, fmt.secs(s.duration)),
    el('td', {}, actions),
  );
}

let refreshing = false;
async function refreshStreams() {
  if (refreshing) return;
  refreshing = true;
  try {
    const res = await api('GET', '/api/v1/streams');
    $('streams-body').replaceChildren(...res.streams.map(streamRow));
    $('streams-empty').hidden = res.streams.length > 0;
    $('streams-updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    showBanner('');
  } catch (err) {
    report(err);
  } finally {
    refreshing = false;
  }
}

$('live-stop').addEventListener('click', () => {
  livePlayer.stop();
  $('live-player').hidden = true;
});

// ---- recordings ----

const vodPlayer = new Player($('vod-video'), (msg) => { $('vod-error').textContent = msg; });

// posterURL is a recording's thumbnail when the catalog has one (the transcoder
// adds posters); recordings without one show none.
function posterURL(r) {
  const p = r.poster_url || r.thumbnail_url || r.poster || (Array.isArray(r.thumbnails) && r.thumbnails[0]);
  if (typeof p !== 'string' || !p) return '';
  return /^(https?:)?\//.test(p) ? p : '/vod/' + p;
}

function playRecording(r) {
  $('vod-error').textContent = '';
  $('vod-title').textContent = `${r.file_id} (${r.format})`;
  $('vod-player').hidden = false;
  $('vod-player').dataset.fileId = r.file_id;
  try {
    vodPlayer.play('/vod/' + r.key, r.format, false);
  } catch (err) {
    report(err, $('vod-error'));
  }
}

async function deleteRecording(r) {
  if (!confirm(`Delete ${r.file_id}: its media and its catalog entry?`)) return;
  try {
    await api('DELETE', '/api/v1/recordings/' + encodeURIComponent(r.file_id));
  } catch (err) {
    report(err, $('recordings-info'));
  }
  listRecordings();
}

function recordingRow(r) {
  const poster = posterURL(r);
  return el('tr', { 'data-file-id': r.file_id },
    el('td', {}, el('input', { type: 'checkbox', name: 'pick', value: r.file_id, title: 'stitch this one' })),
    el('td', {}, poster ? el('img', { class: 'thumb', src: poster, alt: '', loading: 'lazy' }) : ''),
    el('td', { title: r.key }, `${r.app}/${r.stream_id} `, el('span', { class: 'muted' }, r.file_id), r.type ? ` [${r.type}]` : ''),
    el('td', {}, r.format, r.audio_only ? ' (audio)' : ''),
    el('td', {}, fmt.time(r.start_time)),
    el('td', { class: 'num' }, fmt.secs(r.duration)),
    el('td', { class: 'num' }, fmt.bytes(r.size)),
    el('td', {},
      button('Play', 'play-recording', () => playRecording(r)),
      el('a', { href: '/vod/' + r.key, download: '' }, ' file '),
      button('Delete', 'delete-recording', () => deleteRecording(r))),
  );
}

async function listRecordings() {
  const q = new URLSearchParams();
  for (const [k, v] of new FormData($('rec-filter'))) if (v) q.set(k, v);
  q.set('page_size', '100');
  try {
    const res = await api('GET', '/api/v1/recordings?' + q);
    $('recordings-body').replaceChildren(...res.recordings.map(recordingRow));
    $('recordings-info').textContent = `${res.recordings.length} of ${res.total} shown, newest last`;
  } catch (err) {
    report(err, $('recordings-info'));
  }
}

function showRecordingsOf(app, id) {
  const f = $('rec-filter');
  f.elements.app.value = app;
  f.elements.stream_id.value = id;
  listRecordings();
  $('recordings').scrollIntoView();
}

$('rec-filter').addEventListener('submit', (e) => {
  e.preventDefault();
  listRecordings();
});

$('stitch').addEventListener('click', async () => {
  const ids = [...document.querySelectorAll('#recordings-body input[name=pick]:checked')].map((c) => c.value);
  if (ids.length === 0) {
    $('recordings-info').textContent = 'Tick the recordings to stitch, in order, first.';
    return;
  }
  try {
    const res = await api('POST', '/api/v1/stitch', { file_ids: ids });
    followJob(res.job_id);
    $('recordings-info').textContent = `stitch job ${res.job_id} queued`;
  } catch (err) {
    report(err, $('recordings-info'));
  }
});

$('vod-stop').addEventListener('click', () => {
  vodPlayer.stop();
  $('vod-player').hidden = true;
});

// ---- jobs: the ones this page queued or was asked to follow ----

const jobsItem = 'livetape.jobs';
const jobs = new Map(); // id -> last JobInfo (or null before the first answer)
for (const id of JSON.parse(localStorage.getItem(jobsItem) || '[]')) jobs.set(id, null);

function saveJobs() {
  localStorage.setItem(jobsItem, JSON.stringify([...jobs.keys()].slice(-50)));
}

function followJob(id) {
  jobs.set(id, null);
  saveJobs();
  refreshJobs();
}

// GET /api/v1/jobs/{id}: {job_id, type, state: queued|running|completed|failed|canceled,
// progress 0-100, error, result: {outputs: [{template, format, file_id, video_url, …}]}}.
const finalStates = new Set(['completed', 'failed', 'canceled']);

async function cancelJob(id) {
  try {
    await api('DELETE', '/api/v1/jobs/' + encodeURIComponent(id));
  } catch (err) {
    report(err);
  }
  refreshJobs();
}

function jobRow(id, j) {
  const state = j ? j.state : 'unknown';
  const outputs = (j && j.result && j.result.outputs) || [];
  let result = j && j.error ? el('span', { class: 'error' }, j.error) : '';
  if (outputs.length) {
    result = el('span', {}, ...outputs.map((o) =>
      el('span', {}, button('Play ' + (o.template || o.format), 'play-job',
        () => playRecording({ file_id: o.file_id, format: o.format, key: o.video_url.replace(/^.*?\/vod\//, '') })), ' ')));
  }
  const progress = j && !finalStates.has(state)
    ? el('progress', { max: 100, value: j.progress || 0 }) : '';
  return el('tr', { 'data-job': id },
    el('td', {}, id),
    el('td', {}, j ? j.type : ''),
    el('td', {}, state),
    el('td', { class: 'num' }, progress, ' ', j ? `${j.progress || 0} %` : ''),
    el('td', {}, result),
    el('td', {},
      j && !finalStates.has(state) ? button('Cancel', 'cancel-job', () => cancelJob(id)) : '',
      button('Forget', 'forget-job', () => { jobs.delete(id); saveJobs(); renderJobs(); })),
  );
}

function renderJobs() {
  $('jobs-body').replaceChildren(...[...jobs].reverse().map(([id, j]) => jobRow(id, j)));
}

async function refreshJobs() {
  for (const [id, j] of jobs) {
    if (j && finalStates.has(j.state)) continue;
    try {
      jobs.set(id, await api('GET', '/api/v1/jobs/' + encodeURIComponent(id)));
    } catch (err) {
      if (isAuthError(err)) return report(err);
      jobs.set(id, { job_id: id, type: '', state: err.status === 404 ? 'unknown' : 'error', progress: 0, error: explain(err) });
    }
  }
  renderJobs();
}

$('job-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const id = e.target.elements.id.value.trim();
  if (id) followJob(id);
  e.target.reset();
});

// ---- push URL generator ----

$('sign-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const body = {
    app: f.get('app') || 'live',
    stream_id: f.get('stream_id'),
    ttl: parseInt(f.get('ttl'), 10),
    record: f.getAll('record').join('|'),
    record_interval: parseInt(f.get('record_interval'), 10) || 0,
  };
  try {
    const u = await api('POST', '/api/v1/sign', body);
    for (const k of ['push', 'play_flv', 'play_hls', 'play_rtmp']) $('sign-' + k).value = u[k];
    $('sign-expires').textContent = fmt.time(u.expires);
    $('sign-out').hidden = false;
    $('sign-error').textContent = '';
  } catch (err) {
    $('sign-out').hidden = true;
    report(err, $('sign-error'));
  }
});

document.querySelectorAll('[data-copy]').forEach((b) => b.addEventListener('click', async () => {
  const input = $(b.dataset.copy);
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    // No clipboard API (plain http): the text stays selected for Ctrl+C.
  }
}));

// ---- API key ----

$('key').value = apiKey();
$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  setAPIKey($('key').value.trim());
  refreshAll();
});
$('key-forget').addEventListener('click', () => {
  setAPIKey('');
  $('key').value = '';
  refreshAll();
});

function refreshAll() {
  refreshStreams();
  listRecordings();
  refreshJobs();
}

refreshAll();
setInterval(() => {
  if (document.hidden) return;
  refreshStreams();
  refreshJobs();
}, 2000);
