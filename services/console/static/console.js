/* The console page: polls /api/state every second and draws regions, decisions, revocations,
   rotations and QoE charts; buttons post to /api/actions/*. The player is player.js.

   DOM contract: every region is [data-region="<name>"] with data-state (serving, standby,
   draining, down, unknown); each of its pathways is [data-pathway="<region>.<cdn>"] with
   data-state (up, down, draining, unknown) and data-rank; #decisions holds one li per
   decision, newest first, with data-decision-id. */
(function () {
  "use strict";

  var POLL_MS = 1000;
  var COLOURS = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#1b7c83", "#57606a"];

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(ms) {
    return new Date(ms).toTimeString().slice(0, 8);
  }

  function logAction(text, ok) {
    var item = el("li", { "data-ok": ok ? "true" : "false" }, clock(Date.now()) + " " + text);
    var log = $("action-log");
    log.insertBefore(item, log.firstChild);
  }

  function act(action, body) {
    return fetch("/api/actions/" + action, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response.json().then(function (data) {
        if (response.ok) logAction(action + ": " + JSON.stringify(data.outcome), true);
        else logAction(action + " refused: " + data.error + " — " + data.message, false);
      });
    }).catch(function (e) { logAction(action + " failed: " + e, false); });
  }

  // --- regions ---------------------------------------------------------------------------

  var regionNodes = {};

  function regionNode(name) {
    var node = regionNodes[name];
    if (node) return node;
    node = el("div", { "class": "region", "data-region": name, "data-state": "unknown" });
    var head = el("div", { "class": "head" });
    head.appendChild(el("span", { "class": "name" }, name));
    head.appendChild(el("span", { "class": "state" }, "unknown"));
    var kill = el("button", { type: "button", "data-action": "kill-region", "data-region": name }, "kill region");
    kill.addEventListener("click", function () { act("kill-region", { region: name }); });
    var restore = el("button", { type: "button", "data-action": "restore-region", "data-region": name }, "restore region");
    restore.addEventListener("click", function () { act("restore-region", { region: name }); });
    head.appendChild(kill);
    head.appendChild(restore);
    node.appendChild(head);
    node.appendChild(el("ul", { "class": "pathways" }));
    node.appendChild(el("div", { "class": "sources" }));
    $("regions").appendChild(node);
    regionNodes[name] = node;
    return node;
  }

  function percent(x) { return (x * 100).toFixed(1) + "%"; }

  function drawRegions(state) {
    state.regions.forEach(function (region) {
      var node = regionNode(region.name);
      node.setAttribute("data-state", region.state);
      var badge = node.querySelector(".state");
      badge.textContent = region.state;
      badge.setAttribute("data-state", region.state);
      var list = node.querySelector(".pathways");
      region.cdns.forEach(function (cdn) {
        var item = list.querySelector('[data-pathway="' + cdn.pathway + '"]');
        if (!item) {
          item = el("li", { "data-pathway": cdn.pathway });
          list.appendChild(item);
        }
        item.setAttribute("data-state", cdn.state);
        item.setAttribute("data-rank", cdn.rank === null ? "" : String(cdn.rank));
        var text = cdn.cdn + ": " + cdn.state + (cdn.rank ? ", steering rank " + cdn.rank : "");
        if (cdn.probe && !cdn.probe.ok) text += " (edge " + cdn.probe.reason + ")";
        if (cdn.qoe) {
          text += " — " + cdn.qoe.sessions + " sessions, rebuffer " + percent(cdn.qoe.rebuffer_ratio) +
            ", " + Math.round(cdn.qoe.bitrate_kbps) + " kbps, errors " + percent(cdn.qoe.error_rate);
        }
        item.textContent = text;
      });
      var sources = region.sources.map(function (s) {
        return s.role + (s.alive ? " ✓" : " ✗ " + (s.silent_ms / 1000).toFixed(0) + " s silent");
      });
      node.querySelector(".sources").textContent = sources.length ? sources.join(" · ") : "no heartbeats";
    });
    $("steering").textContent = state.steering
      ? "steering (v" + state.steering.version + "): " + state.steering.priority.join(" > ")
      : "steering: none published yet";
  }

  // --- event lists -------------------------------------------------------------------------

  function fillList(list, items, keyName, render) {
    // Rebuilt only when what it shows changed, so a test holding an li keeps it meanwhile.
    var keys = items.map(function (item) { return item[keyName]; }).join("|");
    if (list.getAttribute("data-keys") === keys) return;
    list.setAttribute("data-keys", keys);
    while (list.firstChild) list.removeChild(list.firstChild);
    items.forEach(function (item) { list.appendChild(render(item)); });
  }

  function drawEvents(state) {
    fillList($("decisions"), state.decisions, "decision_id", function (d) {
      return el("li", { "data-decision-id": d.decision_id, "data-from": d.from, "data-to": d.to },
        clock(d.decided_at) + " " + d.from + " → " + d.to + " (" + d.reason + ")" +
        (d.operator ? " by an operator" : "") + (d.content_id !== "*" ? " [" + d.content_id + "]" : ""));
    });
    fillList($("revocations"), state.revocations, "revocation_id", function (r) {
      return el("li", { "data-scope": r.scope },
        clock(r.at) + " " + r.scope + " " + r.subject.slice(0, 16) + " (" + r.reason + ", " + r.requested_by + ")");
    });
    state.rotations.forEach(function (r) { r.key = r.kind + r.epoch_id + r.period; });
    fillList($("rotations"), state.rotations, "key", function (r) {
      var text = r.kind === "period"
        ? "period " + r.period + " of " + r.content_id + " (key id " + (r.key_id || "").slice(0, 8) + "…)"
        : (r.kind === "emergency-epoch" ? "EMERGENCY epoch " : "epoch ") + r.epoch_id.slice(0, 18);
      return el("li", { "data-kind": r.kind }, clock(r.at) + " " + text);
    });
    var period = state.key_period;
    $("key-period").textContent = period
      ? "key period " + period.period + ", next in " + Math.max(0, Math.round((period.ends_at - state.now) / 1000)) + " s"
      : "";
  }

  // --- charts ------------------------------------------------------------------------------

  function colourOf(pathways, pathway) {
    return COLOURS[pathways.indexOf(pathway) % COLOURS.length];
  }

  function drawChart(canvas, series, field, pathways, format) {
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height, pad = 28;
    ctx.clearRect(0, 0, w, h);
    var points = [];
    Object.keys(series).forEach(function (p) { points = points.concat(series[p]); });
    ctx.fillStyle = "#57606a";
    ctx.font = "11px sans-serif";
    if (!points.length) { ctx.fillText("no aggregates yet", pad, h / 2); return; }
    var t0 = Math.min.apply(null, points.map(function (q) { return q.window_end; }));
    var t1 = Math.max.apply(null, points.map(function (q) { return q.window_end; }));
    var top = Math.max.apply(null, points.map(function (q) { return q[field]; }));
    top = top > 0 ? top * 1.1 : 1;
    var x = function (t) { return pad + (t1 === t0 ? 0.5 : (t - t0) / (t1 - t0)) * (w - pad - 8); };
    var y = function (v) { return h - 16 - (v / top) * (h - 26); };
    ctx.strokeStyle = "#d0d7de";
    ctx.beginPath(); ctx.moveTo(pad, y(0)); ctx.lineTo(w - 8, y(0)); ctx.stroke();
    ctx.fillText(format(top), 2, 12);
    ctx.fillText(clock(t0), pad, h - 3);
    ctx.fillText(clock(t1), w - 56, h - 3);
    Object.keys(series).forEach(function (p) {
      var line = series[p];
      ctx.strokeStyle = colourOf(pathways, p);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.lineWidth = 2;
      ctx.beginPath();
      line.forEach(function (q, i) {
        if (i === 0) ctx.moveTo(x(q.window_end), y(q[field]));
        else ctx.lineTo(x(q.window_end), y(q[field]));
      });
      ctx.stroke();
      line.forEach(function (q) { ctx.fillRect(x(q.window_end) - 2, y(q[field]) - 2, 4, 4); });
    });
  }

  function drawCharts(state) {
    var pathways = Object.keys(state.qoe).sort();
    var legend = $("legend");
    var names = pathways.join("|");
    if (legend.getAttribute("data-keys") !== names) {
      legend.setAttribute("data-keys", names);
      legend.textContent = "";
      pathways.forEach(function (p) {
        var entry = el("span", { "data-pathway": p });
        var swatch = el("i");
        swatch.style.background = colourOf(pathways, p);
        entry.appendChild(swatch);
        entry.appendChild(document.createTextNode(p));
        legend.appendChild(entry);
      });
    }
    drawChart($("chart-rebuffer"), state.qoe, "rebuffer_ratio", pathways, percent);
    drawChart($("chart-sessions"), state.qoe, "sessions", pathways, function (v) { return String(Math.round(v)); });
    drawChart($("chart-bitrate"), state.qoe, "bitrate_kbps", pathways, function (v) { return Math.round(v) + ""; });
  }

  // --- the loop ----------------------------------------------------------------------------

  function poll() {
    fetch("/api/state", { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (state) {
      var status = $("feed-status");
      status.textContent = "live · " + state.events + " events";
      status.setAttribute("data-state", "live");
      drawRegions(state);
      drawEvents(state);
      drawCharts(state);
    }).catch(function (e) {
      var status = $("feed-status");
      status.textContent = "console unreachable (" + e.message + ")";
      status.setAttribute("data-state", "offline");
    }).then(function () { setTimeout(poll, POLL_MS); });
  }

  function drawPlayer(state) {
    var status = $("player-status");
    status.textContent = LwPlayer.describe(state);
    status.setAttribute("data-state", state.state);
    $("player-pathway").textContent = state.pathway ? "on " + state.pathway : "";
    $("player-viewer").textContent = state.viewerId ? "as " + state.viewerId : "";
    var refusals = $("key-refusals");
    while (refusals.children.length > state.keyErrors.length) refusals.removeChild(refusals.lastChild);
    for (var i = refusals.children.length; i < state.keyErrors.length; i++) {
      var error = state.keyErrors[i];
      var item = el("li", { "data-reason": error.reason, "data-status": String(error.status) },
        clock(error.atMs) + " key refused: " + error.status + " " + error.reason);
      refusals.insertBefore(item, refusals.firstChild);
    }
  }

  var player = LwPlayer.create($("video"), {});
  LwPlayer.onChange(drawPlayer);
  $("player-restart").addEventListener("click", function () { player.start(); });
  $("revoke-viewer").addEventListener("click", function () {
    act("revoke-viewer", window.lwPlayer.viewerId ? { viewer_id: window.lwPlayer.viewerId } : {});
  });
  $("rotate-keys").addEventListener("click", function () { act("rotate-keys", {}); });
  poll();
  player.start();
})();
