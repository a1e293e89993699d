/* The liveward player: hls.js with a playback token on key requests only, content steering,
   token renewal, and window.lwPlayer kept up to date for people and for browser tests.

   window.lwPlayer = {state, reason, keyUris, keyErrors, pathway, pathwaySwitches, fragments,
   stalls, firstFrameMs, tokenExpiresAt, viewerId, contentId, sessionId}. Times named atMs,
   startMs, endMs are epoch milliseconds (Date.now()); firstFrameMs is milliseconds from page
   load (performance.now()); tokenExpiresAt is epoch seconds. */
(function () {
  "use strict";

  var KEY_PATH = /\/v1\/keys\//;
  var MAX_FRAGMENTS = 50;
  var RENEW_BEFORE_S = 60;

  var lw = {
    state: "idle",
    reason: null,
    keyUris: [],
    keyErrors: [],
    pathway: null,
    pathwaySwitches: [],
    fragments: [],
    stalls: [],
    firstFrameMs: null,
    tokenExpiresAt: null,
    viewerId: null,
    contentId: null,
    sessionId: null,
  };
  window.lwPlayer = lw;

  var listeners = [];
  function changed() {
    listeners.forEach(function (fn) {
      try { fn(lw); } catch (e) { console.error(e); }
    });
  }

  function setState(state, reason) {
    if (reason !== undefined) lw.reason = reason;
    if (lw.state === state) { changed(); return; }
    lw.state = state;
    changed();
  }

  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  function reasonOf(xhr) {
    try {
      var text = typeof xhr.response === "string"
        ? xhr.response
        : new TextDecoder().decode(xhr.response || new ArrayBuffer(0));
      var body = JSON.parse(text);
      return body && body.error ? String(body.error) : null;
    } catch (e) {
      return null;
    }
  }

  function Player(video, options) {
    this.video = video;
    this.viewer = options.viewer;
    this.content = options.content;
    this.config = null;
    this.hls = null;
    this.token = null;
    this.renewTimer = null;
    this.entryIndex = 0;
    this.recoveries = 0;
    this.pathwayByOrigin = {};
    lw.viewerId = this.viewer;
    lw.contentId = this.content;
    this.watchVideo();
  }

  Player.prototype.start = function () {
    var self = this;
    self.stop(true);
    lw.reason = null;
    setState("loading");
    fetch("/api/config").then(function (r) { return r.json(); }).then(function (config) {
      self.config = config;
      self.viewer = self.viewer || config.viewer_id;
      self.content = self.content || config.content_id;
      lw.viewerId = self.viewer;
      lw.contentId = self.content;
      self.pathwayByOrigin = {};
      config.pathways.forEach(function (p) { self.pathwayByOrigin[p.base_url] = p.id; });
      return self.fetchToken(null);
    }).then(function (ok) {
      if (ok) self.load(0);
    }).catch(function (e) {
      setState("error", "console-unreachable");
      console.error(e);
    });
  };

  Player.prototype.fetchToken = function (renew) {
    var self = this;
    var body = { viewer_id: self.viewer, content_id: self.content };
    if (renew) body.renew = renew;
    return postJson("/api/token", body).then(function (answer) {
      if (!answer.ok) {
        var reason = (answer.data && answer.data.error) || "token-refused";
        if (!renew) setState("stopped", reason); else { lw.reason = reason; changed(); }
        return false;
      }
      self.token = answer.data.token;
      lw.sessionId = answer.data.session_id;
      lw.tokenExpiresAt = answer.data.expires_at;
      self.scheduleRenewal();
      changed();
      return true;
    });
  };

  Player.prototype.scheduleRenewal = function () {
    var self = this;
    clearTimeout(self.renewTimer);
    var lifetime = lw.tokenExpiresAt - Date.now() / 1000;
    var lead = Math.min(RENEW_BEFORE_S, lifetime / 3);
    self.renewTimer = setTimeout(function () {
      if (lw.state === "stopped" || lw.state === "error") return;
      self.fetchToken(self.token);
    }, Math.max(1, lifetime - lead) * 1000);
  };

  Player.prototype.entryUrl = function (index) {
    var pathways = this.config.pathways;
    var path = this.config.entry_path.replace("{content}", encodeURIComponent(this.content));
    return pathways[index].base_url + path;
  };

  Player.prototype.load = function (index) {
    var self = this;
    if (typeof Hls === "undefined" || !Hls.isSupported()) {
      setState("error", "hlsjs-unavailable");
      return;
    }
    if (self.hls) self.hls.destroy();
    self.entryIndex = index;
    var hls = new Hls({
      // A refused key is asked for once more, then playback stops with the reason.
      keyLoadPolicy: {
        default: {
          maxTimeToFirstByteMs: 8000,
          maxLoadTimeMs: 20000,
          timeoutRetry: { maxNumRetry: 1, retryDelayMs: 500, maxRetryDelayMs: 1000 },
          errorRetry: { maxNumRetry: 1, retryDelayMs: 500, maxRetryDelayMs: 1000 },
        },
      },
      xhrSetup: function (xhr, url) {
        if (!KEY_PATH.test(url)) return;
        // The header may only be set on an opened request: open it here, hls.js won't again.
        xhr.open("GET", url, true);
        xhr.setRequestHeader("Authorization", "Bearer " + self.token);
        xhr.addEventListener("loadend", function () { self.keyAnswered(xhr, url); });
      },
    });
    self.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, function () {
      self.video.play().catch(function () { /* autoplay refused: muted pages allow it */ });
    });
    hls.on(Hls.Events.KEY_LOADED, function (_, data) {
      var info = data && (data.keyInfo || (data.frag && { decryptdata: data.frag.decryptdata }));
      var uri = info && info.decryptdata && info.decryptdata.uri;
      if (uri && lw.keyUris.indexOf(uri) < 0) { lw.keyUris.push(uri); changed(); }
    });
    hls.on(Hls.Events.FRAG_LOADED, function (_, data) {
      var frag = data.frag;
      lw.fragments.push({ sn: frag.sn, url: frag.url, atMs: Date.now() });
      if (lw.fragments.length > MAX_FRAGMENTS) lw.fragments.splice(0, lw.fragments.length - MAX_FRAGMENTS);
      self.notePathway(self.pathwayOf(frag));
    });
    hls.on(Hls.Events.ERROR, function (_, data) { self.onError(data); });
    hls.loadSource(self.entryUrl(index));
    hls.attachMedia(self.video);
  };

  Player.prototype.pathwayOf = function (frag) {
    try {
      var origin = new URL(frag.url).origin;
      if (this.pathwayByOrigin[origin]) return this.pathwayByOrigin[origin];
    } catch (e) { /* not an absolute URL */ }
    var level = this.hls && this.hls.levels ? this.hls.levels[frag.level] : null;
    return level && level.pathwayId && level.pathwayId !== "." ? level.pathwayId : null;
  };

  Player.prototype.notePathway = function (pathway) {
    if (!pathway || pathway === lw.pathway) return;
    if (lw.pathway !== null) {
      lw.pathwaySwitches.push({ from: lw.pathway, to: pathway, atMs: Date.now() });
    }
    lw.pathway = pathway;
    changed();
  };

  Player.prototype.keyAnswered = function (xhr, url) {
    if (xhr.status < 400) return;
    var reason = reasonOf(xhr) || "http-" + xhr.status;
    lw.keyErrors.push({ url: url, status: xhr.status, reason: reason, atMs: Date.now() });
    lw.reason = reason;
    changed();
  };

  Player.prototype.onError = function (data) {
    var details = data.details;
    var keyError = details === Hls.ErrorDetails.KEY_LOAD_ERROR ||
      details === Hls.ErrorDetails.KEY_LOAD_TIMEOUT;
    if (keyError) {
      var code = data.response && data.response.code;
      if (data.fatal || code === 401 || code === 403) {
        if (data.fatal) {
          this.halt();
          setState("stopped", lw.reason || (code ? "http-" + code : "key-load-failed"));
        }
        return;
      }
    }
    if (!data.fatal) return;
    if (details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR ||
        details === Hls.ErrorDetails.MANIFEST_LOAD_TIMEOUT) {
      // The entry edge is down: try the next pathway's edge for the multivariant playlist.
      if (this.entryIndex + 1 < this.config.pathways.length) {
        this.load(this.entryIndex + 1);
        return;
      }
      this.halt();
      setState("error", "manifest-unreachable");
      return;
    }
    if (this.recoveries < 3) {
      this.recoveries += 1;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) this.hls.recoverMediaError();
      else this.hls.startLoad();
      return;
    }
    this.halt();
    setState("error", details || "fatal-error");
  };

  Player.prototype.halt = function () {
    if (this.hls) this.hls.stopLoad();
    clearTimeout(this.renewTimer);
    this.closeStall();
  };

  Player.prototype.stop = function (quiet) {
    clearTimeout(this.renewTimer);
    if (this.hls) { this.hls.destroy(); this.hls = null; }
    this.closeStall();
    if (!quiet) setState("stopped", "stopped-by-user");
  };

  Player.prototype.closeStall = function () {
    var last = lw.stalls[lw.stalls.length - 1];
    if (last && last.endMs === null) last.endMs = Date.now();
  };

  Player.prototype.watchVideo = function () {
    var self = this;
    var video = self.video;
    function firstFrame() {
      if (lw.firstFrameMs === null) lw.firstFrameMs = Math.round(performance.now());
    }
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(firstFrame);
    video.addEventListener("playing", function () {
      if (!video.requestVideoFrameCallback) firstFrame();
      self.closeStall();
      if (lw.state === "loading" || lw.state === "stalled") setState("playing");
    });
    video.addEventListener("timeupdate", function () {
      if (lw.state === "loading" && video.currentTime > 0) setState("playing");
    });
    video.addEventListener("waiting", function () {
      if (lw.state !== "playing") return;
      lw.stalls.push({ startMs: Date.now(), endMs: null });
      setState("stalled");
    });
  };

  window.LwPlayer = {
    create: function (video, options) { return new Player(video, options || {}); },
    onChange: function (fn) { listeners.push(fn); },
    describe: function (state) {
      return state.reason ? state.state + " — " + state.reason : state.state;
    },
  };
})();
