// Player owns one <video> element and whichever library feeds it: mpegts.js for
// HTTP-FLV (live and recorded), hls.js for HLS where the browser has MediaSource,
// the browser itself for MP4 (and for HLS on Safari).
import Hls from './vendor/hls-1.7.4.min.mjs';

// mpegts.js is a classic script (index.html loads it before this module).
const mpegts = window.mpegts;
if (mpegts) {
  // Its info and debug lines would fill the browser console on every segment.
  mpegts.LoggingControl.enableInfo = false;
  mpegts.LoggingControl.enableDebug = false;
  mpegts.LoggingControl.enableVerbose = false;
}

export class Player {
  // onError(message) is told why playback failed.
  constructor(video, onError) {
    this.video = video;
    this.onError = onError;
    this.stopLibrary = null;
  }

  // play starts url; kind is flv, hls or mp4; live asks the players to keep latency low.
  play(url, kind, live) {
    this.stop();
    const video = this.video;
    if (kind === 'flv') {
      if (!mpegts || !mpegts.isSupported()) throw new Error('this browser cannot play HTTP-FLV (no MediaSource)');
      const p = mpegts.createPlayer({ type: 'flv', isLive: live, url },
        { enableStashBuffer: !live, liveBufferLatencyChasing: live });
      p.on(mpegts.Events.ERROR, (type, detail, info) => this.onError(`${type}: ${detail}${info && info.msg ? ' (' + info.msg + ')' : ''}`));
      p.attachMediaElement(video);
      p.load();
      this.stopLibrary = () => {
        p.unload();
        p.detachMediaElement();
        p.destroy();
      };
    } else if (kind === 'hls' && Hls.isSupported()) {
      const h = new Hls({ lowLatencyMode: false, liveDurationInfinity: live });
      h.on(Hls.Events.ERROR, (_, data) => {
        if (data.fatal) this.onError(`HLS ${data.type}: ${data.details}`);
      });
      h.loadSource(url);
      h.attachMedia(video);
      this.stopLibrary = () => h.destroy();
    } else if (kind === 'hls' || kind === 'mp4') {
      video.src = url; // MP4, or HLS where the browser plays it natively
    } else {
      throw new Error('unknown format ' + kind);
    }
    video.play().catch((err) => {
      // A new load or stop() interrupts a pending play(): not an error.
      if (err.name !== 'AbortError') this.onError(err.message);
    });
  }

  stop() {
    if (this.stopLibrary) {
      this.stopLibrary();
      this.stopLibrary = null;
    }
    this.video.removeAttribute('src');
    this.video.load();
  }
}
