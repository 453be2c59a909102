// consolegate recording player.
//
// The operator opens a recording from their own disk (file picker or drop): the proxy
// never serves recordings on its public listener, and this page fetches nothing but
// its own scripts. It shows the session's metadata, checks the file's SHA-256
// trailer, and replays it:
// - VNC: noVNC's RFB reads the recorded console server bytes from a channel object
//   (ReplayChannel) instead of a WebSocket; what noVNC sends goes nowhere. Seeking
//   resets noVNC and feeds every record up to the target time at once, since its
//   decoders keep state from one update to the next.
// - Serial: asciinema-player plays the .cast as it is.
// Both share one set of controls: play/pause, speed 1×/4×/16×, a position slider and
// a "go to" field.
import RFB from '/novnc/core/rfb.js';
import {
  parseRecording, verifyRecording, vncPlayback, formatTime, parseTime, RecordingError,
} from './recording.js';

const $ = (id) => document.getElementById(id);
const ui = {
  body: document.body,
  status: $('status'),
  file: $('file-input'),
  play: $('btn-play'),
  speed: $('speed'),
  seek: $('seek'),
  position: $('position'),
  seekForm: $('seek-form'),
  seekTo: $('seek-to'),
  seekButton: $('btn-seek'),
  meta: $('meta-list'),
  integrity: $('integrity'),
  screen: $('screen'),
  dropHint: $('drop-hint'),
};

// Feed at most this many bytes to noVNC between waits while fast-forwarding, so its
// receive queue (capped at 40 MiB) never overflows while it is still drawing.
const FAST_FEED_BATCH = 256 << 10;

let player = null;

function setState(state, text) {
  ui.body.dataset.state = state;
  if (text !== undefined) ui.status.textContent = text;
}

function setControls(enabled) {
  for (const el of [ui.play, ui.speed, ui.seek, ui.seekTo, ui.seekButton]) el.disabled = !enabled;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A stand-in for noVNC's WebSocket: open from the start, swallows what noVNC sends,
// and delivers the recorded bytes when the player says so.
class ReplayChannel {
  constructor() {
    this.binaryType = 'arraybuffer';
    this.protocol = 'binary';
    this.readyState = 'open';
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this.onclose = null;
  }

  send() {}

  close() {
    if (this.readyState === 'closed') return;
    this.readyState = 'closed';
    if (this.onclose) this.onclose({ code: 1000, reason: '', wasClean: true });
  }

  deliver(bytes) {
    if (this.readyState === 'open' && this.onmessage) this.onmessage({ data: bytes.slice().buffer });
  }
}

// noVNC 1.7 (pinned in web/package.json) draws some updates asynchronously (JPEG);
// while it does, it stops reading. These are its own fields, read only here.
function noVncBusy(rfb) {
  return Boolean(rfb._flushing || (rfb._display && rfb._display.pending()));
}

// Plays a VNC recording through noVNC.
class VncPlayer {
  constructor(parsed) {
    this.playback = vncPlayback(parsed);
    this.duration = parsed.durationMs;
    this.speed = 1;
    this.playing = false;
    this.pos = 0;
    this.idx = 0;
    this.timer = null;
    this.generation = 0;
    this.failed = null;
  }

  async start() {
    this.reset();
    await this.waitIdle();
  }

  reset() {
    this.generation++;
    if (this.rfb) {
      this.rfb.removeEventListener('disconnect', this.onDisconnect);
      try { this.rfb.disconnect(); } catch (e) { /* already gone */ }
    }
    ui.screen.textContent = '';
    this.channel = new ReplayChannel();
    this.rfb = new RFB(ui.screen, this.channel, { credentials: { password: 'replay' }, shared: true });
    this.rfb.viewOnly = true;
    this.rfb.scaleViewport = true;
    this.rfb.background = '#111';
    this.onDisconnect = (e) => {
      if (!e.detail.clean) this.fail('The recorded session cannot be drawn by this noVNC (it stopped at an update it could not decode).');
    };
    this.rfb.addEventListener('disconnect', this.onDisconnect);
    this.rfb.addEventListener('securityfailure', (e) => {
      this.fail(`The recorded session was refused by its console server: ${e.detail.reason || 'authentication failed'}.`);
    });
    this.idx = 0;
    this.pos = 0;
    this.failed = null;
  }

  fail(text) {
    this.failed = text;
    this.pause();
    setState('error', text);
  }

  async waitIdle() {
    const gen = this.generation;
    for (let i = 0; i < 5000 && gen === this.generation && noVncBusy(this.rfb); i++) await sleep(2);
  }

  // Feeds every chunk up to `until` (ms) as fast as noVNC draws.
  async feedUntil(until) {
    const gen = this.generation;
    let batch = 0;
    const chunks = this.playback.chunks;
    while (this.idx < chunks.length && chunks[this.idx].t <= until) {
      const c = chunks[this.idx++];
      this.channel.deliver(c.data);
      batch += c.data.length;
      if (batch >= FAST_FEED_BATCH) {
        batch = 0;
        await this.waitIdle();
        if (gen !== this.generation) return;
      }
    }
    await this.waitIdle();
  }

  position() {
    if (!this.playing) return this.pos;
    return Math.min(this.duration, this.anchorPos + (performance.now() - this.anchorReal) * this.speed);
  }

  play() {
    if (this.playing || this.failed) return;
    if (this.pos >= this.duration) {
      this.seek(0).then(() => this.play());
      return;
    }
    this.playing = true;
    this.anchorPos = this.pos;
    this.anchorReal = performance.now();
    this.tick();
  }

  pause() {
    if (!this.playing) return;
    this.pos = this.position();
    this.playing = false;
    clearTimeout(this.timer);
  }

  setSpeed(speed) {
    const playing = this.playing;
    this.pause();
    this.speed = speed;
    if (playing) this.play();
  }

  tick() {
    if (!this.playing) return;
    const now = this.position();
    const chunks = this.playback.chunks;
    while (this.idx < chunks.length && chunks[this.idx].t <= now) this.channel.deliver(chunks[this.idx++].data);
    if (now >= this.duration) {
      this.pos = this.duration;
      this.playing = false;
      onEnded();
      return;
    }
    const next = this.idx < chunks.length ? chunks[this.idx].t : this.duration;
    const wait = Math.max(0, Math.min(250, (next - now) / this.speed));
    this.timer = setTimeout(() => this.tick(), wait);
  }

  async seek(ms) {
    const playing = this.playing;
    this.pause();
    const target = Math.max(0, Math.min(this.duration, ms));
    this.reset();
    await this.feedUntil(target);
    this.pos = target;
    if (playing) this.play();
  }

  dispose() {
    this.pause();
    this.generation++;
    if (this.rfb) {
      this.rfb.removeEventListener('disconnect', this.onDisconnect);
      try { this.rfb.disconnect(); } catch (e) { /* already gone */ }
    }
  }
}

// asciinema-player's bundle defines the global AsciinemaPlayer; loaded on first use.
let asciinemaLoaded = null;
function loadAsciinema() {
  if (!asciinemaLoaded) {
    asciinemaLoaded = new Promise((resolve, reject) => {
      const css = document.createElement('link');
      css.rel = 'stylesheet';
      css.href = '/asciinema/asciinema-player.css';
      document.head.appendChild(css);
      const s = document.createElement('script');
      s.src = '/asciinema/asciinema-player.min.js';
      s.onload = () => resolve(window.AsciinemaPlayer);
      s.onerror = () => reject(new Error('asciinema-player is not installed on this proxy'));
      document.head.appendChild(s);
    });
  }
  return asciinemaLoaded;
}

// Plays a serial recording with asciinema-player. Its own controls are hidden so the
// page has one set for both kinds; a speed change re-creates it where it was.
class CastPlayer {
  constructor(parsed) {
    this.parsed = parsed;
    this.duration = parsed.durationMs;
    this.speed = 1;
    this.playing = false;
    this.pos = 0;
    this.ap = null;
  }

  async start() {
    this.lib = await loadAsciinema();
    this.create(0, false);
  }

  create(startMs, autoPlay) {
    if (this.ap) this.ap.dispose();
    ui.screen.textContent = '';
    this.ap = this.lib.create({ data: this.parsed.text }, ui.screen, {
      speed: this.speed,
      startAt: startMs / 1000,
      autoPlay,
      controls: false,
      fit: 'both',
      preload: true,
    });
    this.pos = startMs;
    this.playing = autoPlay;
    if (autoPlay) this.anchor();
    this.ap.addEventListener('ended', () => {
      this.playing = false;
      this.pos = this.duration;
      onEnded();
    });
  }

  anchor() {
    this.anchorPos = this.pos;
    this.anchorReal = performance.now();
  }

  position() {
    if (!this.playing) return this.pos;
    return Math.min(this.duration, this.anchorPos + (performance.now() - this.anchorReal) * this.speed);
  }

  play() {
    if (this.playing) return;
    if (this.pos >= this.duration) this.create(0, false);
    this.playing = true;
    this.anchor();
    this.ap.play();
  }

  pause() {
    if (!this.playing) return;
    this.pos = this.position();
    this.playing = false;
    this.ap.pause();
  }

  setSpeed(speed) {
    const playing = this.playing;
    const at = this.position();
    this.playing = false;
    this.speed = speed;
    this.create(at, playing);
  }

  async seek(ms) {
    const target = Math.max(0, Math.min(this.duration, ms));
    const playing = this.playing;
    this.pause();
    await this.ap.seek(target / 1000);
    this.pos = target;
    if (playing) this.play();
  }

  dispose() {
    if (this.ap) this.ap.dispose();
    this.ap = null;
  }
}

function onEnded() {
  ui.play.textContent = 'Play';
  setState('ended', 'End of the recording.');
  showPosition();
}

function showPosition() {
  if (!player) return;
  const ms = player.position();
  ui.position.dataset.ms = String(Math.round(ms));
  ui.position.textContent = `${formatTime(ms)} / ${formatTime(player.duration)}`;
  if (document.activeElement !== ui.seek) ui.seek.value = String(Math.round(ms));
}

function showMeta(parsed, file) {
  const m = parsed.meta || {};
  const rows = [
    ['File', file.name],
    ['Console', m.kind || (parsed.format === 'vnc' ? 'vnc' : 'serial')],
    ['User (sub)', m.sub ?? '—'],
    ['Ticket (jti)', m.jti ?? '—'],
    ['Key id', m.kid ?? '—'],
    ['Console server', m.target ?? '—'],
    ['Connected to', m.address ?? '—'],
    ['Browser', m.client ?? '—'],
    ['Started', m.start ?? '—'],
    ['Duration', formatTime(parsed.durationMs)],
    ['Session', m.session ?? '—'],
    ['View only', m.view === undefined ? '—' : (m.view ? 'yes' : 'no')],
    ['Input recorded', m.input === undefined ? '—' : (m.input ? 'yes' : 'no')],
    ['Recorded by', m.proxy ?? '—'],
  ];
  ui.meta.textContent = '';
  for (const [k, v] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = String(v);
    ui.meta.append(dt, dd);
  }
}

async function showIntegrity(parsed) {
  ui.integrity.dataset.status = 'checking';
  ui.integrity.textContent = 'Checking…';
  const v = await verifyRecording(parsed);
  ui.integrity.dataset.status = v.status;
  ui.integrity.dataset.sha256 = v.recorded || '';
  if (v.status === 'intact') {
    ui.integrity.textContent = `Intact. SHA-256 ${v.recorded}`;
  } else if (v.status === 'altered') {
    ui.integrity.textContent = `ALTERED: the file does not match its digest (trailer ${v.recorded}, file ${v.computed}).`;
  } else {
    ui.integrity.textContent = 'UNFINISHED: the file has no trailer (the proxy stopped before the session ended, or the file was cut). It plays, but cannot be checked.';
  }
}

async function open(file) {
  if (player) player.dispose();
  player = null;
  setControls(false);
  ui.play.textContent = 'Play';
  setState('loading', `Reading ${file.name}…`);
  let parsed;
  try {
    parsed = parseRecording(await file.arrayBuffer());
  } catch (e) {
    ui.meta.textContent = '';
    ui.integrity.dataset.status = 'none';
    ui.integrity.textContent = 'No recording open.';
    setState('error', e instanceof RecordingError ? e.message : `This file cannot be read: ${e.message}`);
    return;
  }
  showMeta(parsed, file);
  const checked = showIntegrity(parsed);
  try {
    player = parsed.format === 'vnc' ? new VncPlayer(parsed) : new CastPlayer(parsed);
    await player.start();
  } catch (e) {
    setState('error', `This recording cannot be played: ${e.message}`);
    return;
  }
  await checked;
  ui.seek.max = String(Math.round(player.duration));
  ui.seek.value = '0';
  ui.speed.value = '1';
  setControls(true);
  showPosition();
  setState('ready', `Ready: ${formatTime(player.duration)} of ${parsed.format === 'vnc' ? 'VNC' : 'serial console'}.`);
}

ui.file.addEventListener('change', () => {
  if (ui.file.files && ui.file.files[0]) open(ui.file.files[0]);
});

ui.play.addEventListener('click', () => {
  if (!player) return;
  if (player.playing) {
    player.pause();
    ui.play.textContent = 'Play';
    setState('paused', 'Paused.');
  } else {
    player.play();
    ui.play.textContent = 'Pause';
    setState('playing', 'Playing.');
  }
});

ui.speed.addEventListener('change', () => {
  if (player) player.setSpeed(Number(ui.speed.value));
});

async function seekTo(ms) {
  if (!player) return;
  const wasPlaying = player.playing;
  setState('seeking', `Going to ${formatTime(ms)}…`);
  await player.seek(ms);
  showPosition();
  if (player.failed) return;
  if (wasPlaying) setState('playing', 'Playing.');
  else setState('paused', `At ${formatTime(player.position())}.`);
}

ui.seek.addEventListener('change', () => seekTo(Number(ui.seek.value)));

ui.seekForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const ms = parseTime(ui.seekTo.value);
  if (ms === null) {
    ui.status.textContent = 'Write the time as seconds, m:ss or h:mm:ss.';
    return;
  }
  seekTo(ms);
});

// Drop a file anywhere on the page.
let dragDepth = 0;
window.addEventListener('dragenter', (e) => {
  e.preventDefault();
  dragDepth++;
  ui.dropHint.hidden = false;
});
window.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) ui.dropHint.hidden = true;
});
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  ui.dropHint.hidden = true;
  const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
  if (f) open(f);
});

setInterval(showPosition, 200);
