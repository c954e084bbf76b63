// Interactive maps: canvas drawing, pan and zoom, tooltips with thumbnails, colouring, box and
// lasso selection. The data comes from <script type="application/json"> elements written by
// src/report/html/map.rs; nothing is fetched. User text is only ever set as textContent.
(function () {
  "use strict";
  var api = window.clipflowReport = window.clipflowReport || {};
  var sharedElement = document.getElementById("imap-shared");
  if (!sharedElement) return;
  var shared = JSON.parse(sharedElement.textContent);
  var STR = shared.strings;
  var ITEMS = shared.items; // [id, label, caption, sheet set, thumbnail], string indices or -1
  var images = []; // per sheet set: decoded sheet Images, created on first use

  // The first ten are the static plots' colours (matplotlib's tab10), then their light
  // companions (tab20), then hues spread by the golden angle.
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"];
  var MISSING = "#9aa1ad";
  var RIGHT = "#1f9d55", WRONG = "#d64545";
  var HOVER_PX = 8;
  var LEGEND_MAX = 40;

  function colour(i) {
    if (i < PALETTE.length) return PALETTE[i];
    // Hues spread by the golden angle, as #rrggbb (HSL with s = 60%, l = 50%).
    var h = (i * 137.508) % 360 / 60, c = 0.6, x = c * (1 - Math.abs(h % 2 - 1)), m = 0.2;
    var rgb = h < 1 ? [c, x, 0] : h < 2 ? [x, c, 0] : h < 3 ? [0, c, x] : h < 4 ? [0, x, c] :
      h < 5 ? [x, 0, c] : [c, 0, x];
    return "#" + rgb.map(function (v) {
      return ("0" + Math.round((v + m) * 255).toString(16)).slice(-2);
    }).join("");
  }

  // "#rrggbb" as [r, g, b].
  function rgbOf(hex) {
    var v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }

  // "rgb(r, g, b)" (a computed style) as [r, g, b], white if unreadable.
  function parseRgb(text) {
    var m = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(text || "");
    return m ? [+m[1], +m[2], +m[3]] : [255, 255, 255];
  }

  // A colour as the 32-bit pixel of a little-endian RGBA ImageData buffer, mixed with `bg` by
  // `alpha` (points are opaque in the buffer; fading is mixing with the background).
  function pixel(rgb, alpha, bg) {
    var r = Math.round(rgb[0] * alpha + bg[0] * (1 - alpha));
    var g = Math.round(rgb[1] * alpha + bg[1] * (1 - alpha));
    var b = Math.round(rgb[2] * alpha + bg[2] * (1 - alpha));
    return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
  }

  function str(i) { return i >= 0 && i !== null ? STR[i] : null; }

  function sheetImage(set, index, ready) {
    var sheets = images[set] || (images[set] = []);
    var img = sheets[index];
    if (!img) {
      img = sheets[index] = new Image();
      img.decoding = "async";
      img.src = shared.sheets[set].images[index];
    }
    if (img.complete && img.naturalWidth > 0) return img;
    img.addEventListener("load", ready, { once: true });
    return null;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function cssVar(node, name, fallback) {
    var v = getComputedStyle(node).getPropertyValue(name).trim();
    return v || fallback;
  }

  // One categorical colouring: per point a category (-1 for none), category names, colours.
  function categorical(name, keys, compare, missingName) {
    var n = keys.length, distinct = [], seen = new Map();
    for (var i = 0; i < n; i++) {
      var k = keys[i];
      if (k === null || k === undefined || seen.has(k)) continue;
      seen.set(k, -1);
      distinct.push(k);
    }
    distinct.sort(compare);
    distinct.forEach(function (k, c) { seen.set(k, c); });
    var cat = new Int32Array(n);
    for (var j = 0; j < n; j++) {
      var key = keys[j];
      cat[j] = key === null || key === undefined ? -1 : seen.get(key);
    }
    return {
      name: name,
      cat: cat,
      names: distinct.map(String),
      colours: distinct.map(function (_, c) { return colour(c); }),
      missing: missingName,
    };
  }

  function byText(a, b) { return a < b ? -1 : a > b ? 1 : 0; }
  function byNumber(a, b) { return a - b; }

  function MapView(figure, data) {
    this.figure = figure;
    this.data = data;
    this.n = data.n;
    var e = data.extent, steps = data.steps || 65535;
    var n = this.n;
    var xs = this.xs = new Float64Array(n), ys = this.ys = new Float64Array(n);
    var dx = e[2] - e[0], dy = e[3] - e[1];
    for (var i = 0; i < n; i++) {
      xs[i] = e[0] + data.x[i] / steps * dx;
      ys[i] = e[1] + data.y[i] / steps * dy;
    }
    if (data.variant1 !== undefined) data.variant = new Array(n).fill(data.variant1);
    this.extent = e;
    this.items = data.item;
    this.selected = new Uint8Array(n);
    this.selectedCount = 0;
    this.hovered = -1;
    this.view = null;
    this.lastDrawMs = 0;
    this.colourings = this.makeColourings();
    this.colouring = this.colourings[0];
    this.buildGrid();
    this.buildDom();
    this.setColouring(0);
  }

  MapView.prototype.makeColourings = function () {
    var d = this.data, n = this.n, items = this.items, list = [];
    var labels = new Array(n), any = false;
    for (var i = 0; i < n; i++) {
      labels[i] = str(ITEMS[items[i]][1]);
      if (labels[i] !== null) any = true;
    }
    if (any) list.push(categorical("label", labels, byText, "unlabelled"));
    (d.clusters || []).forEach(function (c) {
      list.push(categorical("cluster: " + c.name, c.v, byNumber, "no cluster"));
    });
    if (d.variant) {
      list.push(categorical("variant", d.variant.map(function (v) { return str(v); }), byText, "none"));
    }
    if (d.zsok) {
      var cat = new Int32Array(n);
      for (var j = 0; j < n; j++) cat[j] = d.zsok[j] === null ? -1 : d.zsok[j] ? 0 : 1;
      list.push({ name: "zero-shot right/wrong", cat: cat, names: ["right", "wrong"],
        colours: [RIGHT, WRONG], missing: "no prediction" });
    }
    if (!list.length) {
      list.push({ name: "none", cat: new Int32Array(n), names: ["points"], colours: [PALETTE[0]],
        missing: "" });
    }
    return list;
  };

  // A uniform grid over the extent: the points near the cursor without scanning them all.
  MapView.prototype.buildGrid = function () {
    var n = this.n, e = this.extent;
    var g = this.grid = Math.max(1, Math.min(1024, Math.floor(Math.sqrt(n / 4))));
    var w = (e[2] - e[0]) || 1, h = (e[3] - e[1]) || 1;
    this.cellW = w / g;
    this.cellH = h / g;
    var counts = new Int32Array(g * g + 1), cell = new Int32Array(n);
    for (var i = 0; i < n; i++) {
      var cx = Math.min(g - 1, Math.max(0, Math.floor((this.xs[i] - e[0]) / this.cellW)));
      var cy = Math.min(g - 1, Math.max(0, Math.floor((this.ys[i] - e[1]) / this.cellH)));
      cell[i] = cy * g + cx;
      counts[cell[i] + 1]++;
    }
    for (var c = 0; c < g * g; c++) counts[c + 1] += counts[c];
    var fill = counts.slice(0, g * g), order = new Int32Array(n);
    for (var j = 0; j < n; j++) order[fill[cell[j]]++] = j;
    this.cellStart = counts;
    this.cellOrder = order;
  };

  MapView.prototype.buildDom = function () {
    var self = this, fig = this.figure;
    var body = fig.querySelector(".imap-body");
    body.replaceChildren();
    var bar = el("div", "imap-toolbar");
    var label = el("label", "imap-colour-by", "Colour by ");
    var select = this.select = el("select");
    this.colourings.forEach(function (c, i) {
      var o = el("option", null, c.name);
      o.value = String(i);
      select.appendChild(o);
    });
    select.addEventListener("change", function () { self.setColouring(+select.value); });
    label.appendChild(select);
    bar.appendChild(label);
    var modes = el("div", "imap-modes");
    modes.setAttribute("role", "group");
    modes.setAttribute("aria-label", "Drag to");
    this.modeButtons = {};
    [["pan", "Pan", "Drag to pan (Shift+drag: box)"], ["box", "Box", "Drag a box to select"],
      ["lasso", "Lasso", "Draw around points to select"]].forEach(function (m) {
      var b = el("button", "imap-mode", m[1]);
      b.type = "button";
      b.title = m[2];
      b.dataset.mode = m[0];
      b.addEventListener("click", function () { self.setMode(m[0]); });
      modes.appendChild(b);
      self.modeButtons[m[0]] = b;
    });
    bar.appendChild(modes);
    var zoom = el("div", "imap-zoom");
    [["+", "Zoom in", function () { self.zoomBy(1.5); }],
      ["−", "Zoom out", function () { self.zoomBy(1 / 1.5); }],
      ["Reset", "Show every point", function () { self.fit(); self.draw(); }]].forEach(function (z) {
      var b = el("button", "imap-zoom-button", z[0]);
      b.type = "button";
      b.title = z[1];
      b.addEventListener("click", z[2]);
      zoom.appendChild(b);
    });
    bar.appendChild(zoom);
    bar.appendChild(el("span", "imap-count dim", this.n.toLocaleString("en-US") + " points"));
    body.appendChild(bar);

    var stage = this.stage = el("div", "imap-stage");
    this.canvas = el("canvas", "imap-points");
    this.overlay = el("canvas", "imap-overlay");
    this.overlay.setAttribute("aria-label", this.data.title);
    this.overlay.setAttribute("role", "img");
    this.tip = el("div", "imap-tip");
    this.tip.hidden = true;
    this.tip.setAttribute("role", "status");
    stage.appendChild(this.canvas);
    stage.appendChild(this.overlay);
    stage.appendChild(this.tip);
    body.appendChild(stage);
    this.legend = el("ul", "imap-legend");
    body.appendChild(this.legend);

    var sel = this.selectionBox = el("div", "imap-selection");
    sel.hidden = true;
    var head = el("div", "imap-selection-head");
    this.selectionCount = el("span", "imap-selection-count");
    var copy = el("button", "imap-copy", "Copy ids");
    copy.type = "button";
    copy.addEventListener("click", function () { self.copy(copy); });
    var clear = el("button", "imap-clear", "Clear");
    clear.type = "button";
    clear.addEventListener("click", function () { self.setSelection(null); });
    head.appendChild(this.selectionCount);
    head.appendChild(copy);
    head.appendChild(clear);
    sel.appendChild(head);
    this.selectionText = el("textarea", "imap-selection-ids");
    this.selectionText.readOnly = true;
    this.selectionText.rows = 6;
    this.selectionText.setAttribute("aria-label", "Selected ids");
    sel.appendChild(this.selectionText);
    body.appendChild(sel);

    this.setMode("pan");
    this.bindPointer();
    this.resize();
    if ("ResizeObserver" in window) {
      new ResizeObserver(function () { self.resize(); }).observe(stage);
    } else {
      window.addEventListener("resize", function () { self.resize(); });
    }
  };

  MapView.prototype.setMode = function (mode) {
    this.mode = mode;
    for (var m in this.modeButtons) {
      this.modeButtons[m].setAttribute("aria-pressed", String(m === mode));
    }
    this.overlay.style.cursor = mode === "pan" ? "grab" : "crosshair";
  };

  MapView.prototype.setColouring = function (index) {
    var c = this.colouring = this.colourings[index];
    this.select.value = String(index);
    // Points per category, in index order; points without one are drawn first (underneath).
    var k = c.names.length, counts = new Int32Array(k + 1);
    for (var i = 0; i < this.n; i++) counts[c.cat[i] + 1]++;
    var lists = [];
    for (var j = 0; j <= k; j++) lists.push(new Int32Array(counts[j]));
    var fill = new Int32Array(k + 1);
    for (var p = 0; p < this.n; p++) {
      var g = c.cat[p] + 1;
      lists[g][fill[g]++] = p;
    }
    this.groups = lists;
    this.groupCounts = counts;
    this.renderLegend();
    this.draw();
  };

  MapView.prototype.renderLegend = function () {
    var c = this.colouring, ul = this.legend, counts = this.groupCounts;
    ul.replaceChildren();
    var shown = Math.min(c.names.length, LEGEND_MAX);
    function entry(name, col, count) {
      var li = el("li");
      var sw = el("span", "imap-swatch");
      sw.style.background = col;
      li.appendChild(sw);
      li.appendChild(document.createTextNode(name + " "));
      li.appendChild(el("span", "dim", count.toLocaleString("en-US")));
      ul.appendChild(li);
    }
    for (var i = 0; i < shown; i++) entry(c.names[i], c.colours[i], counts[i + 1]);
    if (c.names.length > shown) {
      ul.appendChild(el("li", "dim", "+" + (c.names.length - shown) + " more"));
    }
    if (counts[0] > 0) entry(c.missing, MISSING, counts[0]);
  };

  MapView.prototype.resize = function () {
    var rect = this.stage.getBoundingClientRect();
    var w = Math.max(50, Math.round(rect.width)), h = Math.max(50, Math.round(rect.height));
    var dpr = window.devicePixelRatio || 1;
    var old = this.size;
    this.size = { w: w, h: h, dpr: dpr };
    [this.canvas, this.overlay].forEach(function (cv) {
      cv.width = Math.round(w * dpr);
      cv.height = Math.round(h * dpr);
      cv.style.width = w + "px";
      cv.style.height = h + "px";
    });
    if (!this.view || !old) this.fit();
    this.draw();
  };

  MapView.prototype.fit = function () {
    var e = this.extent, w = this.size.w, h = this.size.h;
    var dx = e[2] - e[0], dy = e[3] - e[1];
    if (!(dx > 0)) dx = Math.max(Math.abs(e[0]), 1);
    if (!(dy > 0)) dy = Math.max(Math.abs(e[1]), 1);
    this.view = { cx: (e[0] + e[2]) / 2, cy: (e[1] + e[3]) / 2,
      k: 0.92 * Math.min(w / dx, h / dy) };
  };

  MapView.prototype.toScreen = function (x, y) {
    var v = this.view;
    return [this.size.w / 2 + (x - v.cx) * v.k, this.size.h / 2 - (y - v.cy) * v.k];
  };

  MapView.prototype.toData = function (sx, sy) {
    var v = this.view;
    return [v.cx + (sx - this.size.w / 2) / v.k, v.cy - (sy - this.size.h / 2) / v.k];
  };

  MapView.prototype.pointRadius = function () {
    return this.n > 20000 ? 1.25 : this.n > 5000 ? 1.75 : this.n > 1000 ? 2.75 : 3.5;
  };

  MapView.prototype.scheduleDraw = function () {
    var self = this;
    if (this.pending) return;
    this.pending = requestAnimationFrame(function () { self.pending = 0; self.draw(); });
  };

  // Up to PATH_MAX points: anti-aliased discs, one path and one fill per colour. Above, squares
  // written straight into a pixel buffer and put once: in a software-rendered browser, filling
  // 50,000 little paths costs ~100 ms, writing their pixels a few.
  var PATH_MAX = 3000;

  MapView.prototype.draw = function () {
    if (!this.size || !this.groups) return;
    var t0 = performance.now();
    if (this.n > PATH_MAX) this.drawPixels(); else this.drawPaths();
    this.lastDrawMs = performance.now() - t0;
    this.drawOverlay();
  };

  MapView.prototype.drawPaths = function () {
    var ctx = this.canvas.getContext("2d");
    var s = this.size, v = this.view, xs = this.xs, ys = this.ys;
    ctx.setTransform(s.dpr, 0, 0, s.dpr, 0, 0);
    ctx.clearRect(0, 0, s.w, s.h);
    var r = this.pointRadius(), d = 2 * r;
    var ox = s.w / 2 - v.cx * v.k, oy = s.h / 2 + v.cy * v.k, k = v.k;
    var c = this.colouring, sel = this.selected, anySel = this.selectedCount > 0;
    for (var pass = 0; pass < (anySel ? 2 : 1); pass++) {
      // With a selection, first the others faded, then the selected points on top.
      ctx.globalAlpha = anySel && pass === 0 ? 0.18 : 0.85;
      for (var g = 0; g < this.groups.length; g++) {
        var list = this.groups[g];
        if (!list.length) continue;
        var path = new Path2D(), drawn = 0;
        for (var i = 0; i < list.length; i++) {
          var p = list[i];
          if (anySel && (sel[p] === 1) !== (pass === 1)) continue;
          var sx = ox + xs[p] * k, sy = oy - ys[p] * k;
          if (sx < -d || sy < -d || sx > s.w + d || sy > s.h + d) continue;
          path.moveTo(sx + r, sy);
          path.arc(sx, sy, r, 0, 6.283185307179586);
          drawn++;
        }
        if (!drawn) continue;
        ctx.fillStyle = g === 0 ? MISSING : c.colours[g - 1];
        ctx.fill(path);
      }
    }
    ctx.globalAlpha = 1;
  };

  MapView.prototype.drawPixels = function () {
    var cv = this.canvas, ctx = cv.getContext("2d"), W = cv.width, H = cv.height;
    if (!this.pixels || this.pixels.width !== W || this.pixels.height !== H) {
      this.pixels = ctx.createImageData(W, H);
      this.pixelWords = new Uint32Array(this.pixels.data.buffer);
    }
    var buf = this.pixelWords;
    var bg = parseRgb(getComputedStyle(this.stage).backgroundColor);
    var bgWord = pixel(bg, 1, bg);
    buf.fill(bgWord);
    var s = this.size, v = this.view, xs = this.xs, ys = this.ys, dpr = s.dpr;
    var side = Math.max(1, Math.round(2 * this.pointRadius() * dpr)), half = side / 2;
    var ox = (s.w / 2 - v.cx * v.k) * dpr, oy = (s.h / 2 + v.cy * v.k) * dpr, k = v.k * dpr;
    var c = this.colouring, sel = this.selected, anySel = this.selectedCount > 0;
    for (var pass = 0; pass < (anySel ? 2 : 1); pass++) {
      var alpha = anySel && pass === 0 ? 0.18 : 0.9;
      for (var g = 0; g < this.groups.length; g++) {
        var list = this.groups[g];
        if (!list.length) continue;
        var word = pixel(rgbOf(g === 0 ? MISSING : c.colours[g - 1]), alpha, bg);
        for (var i = 0; i < list.length; i++) {
          var p = list[i];
          if (anySel && (sel[p] === 1) !== (pass === 1)) continue;
          var x0 = Math.round(ox + xs[p] * k - half), y0 = Math.round(oy - ys[p] * k - half);
          var x1 = x0 + side, y1 = y0 + side;
          if (x1 <= 0 || y1 <= 0 || x0 >= W || y0 >= H) continue;
          if (x0 < 0) x0 = 0;
          if (y0 < 0) y0 = 0;
          if (x1 > W) x1 = W;
          if (y1 > H) y1 = H;
          for (var y = y0; y < y1; y++) {
            var row = y * W;
            for (var x = x0; x < x1; x++) buf[row + x] = word;
          }
        }
      }
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.putImageData(this.pixels, 0, 0);
  };

  MapView.prototype.drawOverlay = function () {
    var ctx = this.overlay.getContext("2d"), s = this.size;
    ctx.setTransform(s.dpr, 0, 0, s.dpr, 0, 0);
    ctx.clearRect(0, 0, s.w, s.h);
    var ink = cssVar(this.figure, "--text", "#1d2330");
    if (this.hovered >= 0) {
      var p = this.toScreen(this.xs[this.hovered], this.ys[this.hovered]);
      ctx.lineWidth = 2;
      ctx.strokeStyle = ink;
      ctx.beginPath();
      ctx.arc(p[0], p[1], this.pointRadius() + 3, 0, 2 * Math.PI);
      ctx.stroke();
    }
    var drag = this.drag;
    if (drag && (drag.kind === "box" || drag.kind === "lasso")) {
      ctx.lineWidth = 1;
      ctx.setLineDash([4, 3]);
      ctx.strokeStyle = ink;
      ctx.fillStyle = "rgba(47,111,223,0.08)";
      ctx.beginPath();
      if (drag.kind === "box") {
        ctx.rect(Math.min(drag.x0, drag.x1), Math.min(drag.y0, drag.y1),
          Math.abs(drag.x1 - drag.x0), Math.abs(drag.y1 - drag.y0));
      } else {
        drag.path.forEach(function (q, i) { if (i) ctx.lineTo(q[0], q[1]); else ctx.moveTo(q[0], q[1]); });
        ctx.closePath();
      }
      ctx.fill();
      ctx.stroke();
      ctx.setLineDash([]);
    }
  };

  // The point nearest to (sx, sy) within HOVER_PX, or -1; ties go to the later point, which
  // is drawn on top.
  MapView.prototype.pick = function (sx, sy) {
    var q = this.toData(sx, sy), e = this.extent, g = this.grid;
    var rad = HOVER_PX / this.view.k;
    var c0 = Math.max(0, Math.floor((q[0] - rad - e[0]) / this.cellW));
    var c1 = Math.min(g - 1, Math.floor((q[0] + rad - e[0]) / this.cellW));
    var r0 = Math.max(0, Math.floor((q[1] - rad - e[1]) / this.cellH));
    var r1 = Math.min(g - 1, Math.floor((q[1] + rad - e[1]) / this.cellH));
    var best = -1, bestD = rad * rad;
    for (var row = r0; row <= r1; row++) {
      for (var col = c0; col <= c1; col++) {
        var cell = row * g + col;
        for (var k = this.cellStart[cell]; k < this.cellStart[cell + 1]; k++) {
          var p = this.cellOrder[k];
          var dx = this.xs[p] - q[0], dy = this.ys[p] - q[1], dd = dx * dx + dy * dy;
          if (dd < bestD || (dd === bestD && p > best)) { best = p; bestD = dd; }
        }
      }
    }
    return best;
  };

  MapView.prototype.bindPointer = function () {
    var self = this, o = this.overlay;
    function local(ev) {
      var r = o.getBoundingClientRect();
      return [ev.clientX - r.left, ev.clientY - r.top];
    }
    o.addEventListener("pointerdown", function (ev) {
      if (ev.button !== 0) return;
      self.active = true;
      var p = local(ev);
      var kind = self.mode === "pan" ? (ev.shiftKey ? "box" : "pan") : self.mode;
      self.drag = { kind: kind, x0: p[0], y0: p[1], x1: p[0], y1: p[1], path: [p],
        add: ev.shiftKey && self.mode !== "pan", view: { cx: self.view.cx, cy: self.view.cy } };
      o.setPointerCapture(ev.pointerId);
      if (kind === "pan") o.style.cursor = "grabbing";
      self.hideTip();
      ev.preventDefault();
    });
    o.addEventListener("pointermove", function (ev) {
      var p = local(ev), d = self.drag;
      if (!d) {
        self.hover(p[0], p[1], ev);
        return;
      }
      d.x1 = p[0];
      d.y1 = p[1];
      if (d.kind === "pan") {
        self.view.cx = d.view.cx - (d.x1 - d.x0) / self.view.k;
        self.view.cy = d.view.cy + (d.y1 - d.y0) / self.view.k;
        self.scheduleDraw();
      } else {
        if (d.kind === "lasso") d.path.push(p);
        self.drawOverlay();
      }
    });
    function end(ev) {
      var d = self.drag;
      if (!d) return;
      self.drag = null;
      if (o.hasPointerCapture(ev.pointerId)) o.releasePointerCapture(ev.pointerId);
      if (d.kind === "pan") {
        o.style.cursor = self.mode === "pan" ? "grab" : "crosshair";
      } else if (ev.type === "pointerup") {
        self.selectDrag(d);
      }
      self.drawOverlay();
    }
    o.addEventListener("pointerup", end);
    o.addEventListener("pointercancel", end);
    o.addEventListener("pointerleave", function () {
      if (!self.drag) self.hideTip();
      self.active = false;
    });
    // The wheel zooms once the map has been clicked (or with Ctrl/⌘), so scrolling the page
    // past a map does not get caught in it.
    o.addEventListener("wheel", function (ev) {
      if (!self.active && !ev.ctrlKey && !ev.metaKey) {
        self.flashHint();
        return;
      }
      ev.preventDefault();
      var p = local(ev);
      self.zoomBy(Math.exp(-ev.deltaY * (ev.deltaMode === 1 ? 0.05 : 0.0015)), p[0], p[1]);
    }, { passive: false });
    o.addEventListener("dblclick", function (ev) {
      var p = local(ev);
      self.zoomBy(ev.shiftKey ? 0.5 : 2, p[0], p[1]);
    });
  };

  MapView.prototype.flashHint = function () {
    var hint = this.hint, self = this;
    if (!hint) {
      hint = this.hint = el("div", "imap-hint", "Click the map (or hold Ctrl) to zoom with the wheel");
      this.stage.appendChild(hint);
    }
    hint.classList.add("shown");
    clearTimeout(this.hintTimer);
    this.hintTimer = setTimeout(function () { self.hint.classList.remove("shown"); }, 1200);
  };

  MapView.prototype.zoomBy = function (factor, sx, sy) {
    if (sx === undefined) { sx = this.size.w / 2; sy = this.size.h / 2; }
    var before = this.toData(sx, sy);
    this.view.k = Math.min(Math.max(this.view.k * factor, 1e-12), 1e12);
    var after = this.toData(sx, sy);
    this.view.cx += before[0] - after[0];
    this.view.cy += before[1] - after[1];
    this.hideTip();
    this.scheduleDraw();
  };

  MapView.prototype.selectDrag = function (d) {
    var n = this.n, hit = new Uint8Array(n), xs = this.xs, ys = this.ys;
    var inside;
    if (d.kind === "box") {
      var x0 = Math.min(d.x0, d.x1), x1 = Math.max(d.x0, d.x1);
      var y0 = Math.min(d.y0, d.y1), y1 = Math.max(d.y0, d.y1);
      if (x1 - x0 < 2 && y1 - y0 < 2) return;
      inside = function (sx, sy) { return sx >= x0 && sx <= x1 && sy >= y0 && sy <= y1; };
    } else {
      var poly = d.path;
      if (poly.length < 3) return;
      var bx0 = Infinity, bx1 = -Infinity, by0 = Infinity, by1 = -Infinity;
      poly.forEach(function (q) {
        bx0 = Math.min(bx0, q[0]); bx1 = Math.max(bx1, q[0]);
        by0 = Math.min(by0, q[1]); by1 = Math.max(by1, q[1]);
      });
      inside = function (sx, sy) {
        if (sx < bx0 || sx > bx1 || sy < by0 || sy > by1) return false;
        var c = false;
        for (var i = 0, j = poly.length - 1; i < poly.length; j = i++) {
          var a = poly[i], b = poly[j];
          if ((a[1] > sy) !== (b[1] > sy) &&
            sx < (b[0] - a[0]) * (sy - a[1]) / (b[1] - a[1]) + a[0]) c = !c;
        }
        return c;
      };
    }
    for (var p = 0; p < n; p++) {
      var s = this.toScreen(xs[p], ys[p]);
      if (inside(s[0], s[1])) hit[p] = 1;
    }
    if (d.add) {
      for (var q = 0; q < n; q++) hit[q] |= this.selected[q];
    }
    this.setSelection(hit);
  };

  MapView.prototype.setSelection = function (mask) {
    this.selected = mask || new Uint8Array(this.n);
    var ids = [];
    for (var i = 0; i < this.n; i++) {
      if (this.selected[i]) ids.push(STR[ITEMS[this.items[i]][0]]);
    }
    this.selectedCount = ids.length;
    this.selectionBox.hidden = ids.length === 0;
    this.selectionCount.textContent = ids.length.toLocaleString("en-US") + " selected";
    this.selectionText.value = ids.join("\n");
    this.draw();
  };

  MapView.prototype.selectedIds = function () {
    return this.selectionText.value ? this.selectionText.value.split("\n") : [];
  };

  MapView.prototype.copy = function (button) {
    var text = this.selectionText.value, area = this.selectionText;
    function done(ok) {
      button.textContent = ok ? "Copied" : "Select and copy";
      setTimeout(function () { button.textContent = "Copy ids"; }, 1500);
    }
    function fallback() {
      area.focus();
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  };

  MapView.prototype.hover = function (sx, sy) {
    var p = this.pick(sx, sy);
    if (p !== this.hovered) {
      this.hovered = p;
      this.drawOverlay();
    }
    if (p < 0) { this.hideTip(); return; }
    this.showTip(p, sx, sy);
  };

  MapView.prototype.hideTip = function () {
    if (!this.tip.hidden) this.tip.hidden = true;
    if (this.hovered >= 0) {
      this.hovered = -1;
      this.drawOverlay();
    }
  };

  MapView.prototype.showTip = function (p, sx, sy) {
    var tip = this.tip, item = ITEMS[this.items[p]], d = this.data;
    if (tip.dataset.point !== String(p)) {
      tip.dataset.point = String(p);
      tip.dataset.id = STR[item[0]];
      tip.replaceChildren();
      if (item[3] >= 0 && item[4] >= 0) {
        tip.dataset.thumb = String(item[4]);
        tip.appendChild(this.thumbnail(item[3], item[4], p));
      } else {
        delete tip.dataset.thumb;
      }
      var text = el("div", "imap-tip-text");
      text.appendChild(el("code", "imap-tip-id", STR[item[0]]));
      var label = str(item[1]);
      if (label !== null) text.appendChild(el("div", "imap-tip-label", label));
      var caption = str(item[2]);
      if (caption !== null) text.appendChild(el("div", "imap-tip-caption", caption));
      if (d.zs && d.zs[p] !== null) {
        var ok = d.zsok[p] === 1;
        var z = el("div", "imap-tip-zs " + (ok ? "ok" : "bad"),
          "zero-shot: " + STR[d.zs[p]] + (ok ? " ✓" : " ✗"));
        text.appendChild(z);
      }
      (d.clusters || []).forEach(function (c) {
        var v = c.v[p];
        text.appendChild(el("div", "imap-tip-cluster dim",
          c.name + " cluster: " + (v === null ? "none" : v)));
      });
      if (d.variant && d.variant[p] !== null) {
        text.appendChild(el("div", "imap-tip-variant dim", "variant: " + STR[d.variant[p]]));
      }
      tip.appendChild(text);
    }
    tip.hidden = false;
    var w = tip.offsetWidth, h = tip.offsetHeight, s = this.size;
    var x = sx + 14, y = sy + 14;
    if (x + w > s.w) x = Math.max(0, sx - 14 - w);
    if (y + h > s.h) y = Math.max(0, sy - 14 - h);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  };

  // The thumbnail as a small canvas cut from its sprite sheet.
  MapView.prototype.thumbnail = function (set, index, point) {
    var sheet = shared.sheets[set], t = 5 * index, tiles = sheet.tiles;
    var sheetIndex = tiles[t], x = tiles[t + 1], y = tiles[t + 2], w = tiles[t + 3], h = tiles[t + 4];
    var scale = 96 / sheet.tile, dpr = window.devicePixelRatio || 1;
    var cv = el("canvas", "imap-thumb");
    cv.style.width = Math.round(w * scale) + "px";
    cv.style.height = Math.round(h * scale) + "px";
    cv.width = Math.round(w * scale * dpr);
    cv.height = Math.round(h * scale * dpr);
    var self = this;
    function paint() {
      var img = sheetImage(set, sheetIndex, function () {
        if (self.tip.dataset.point === String(point)) paint();
      });
      if (!img) return;
      var ctx = cv.getContext("2d");
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(img, x, y, w, h, 0, 0, cv.width, cv.height);
      cv.dataset.painted = "1";
    }
    paint();
    return cv;
  };

  // For tests and benchmarks: where a point is on the screen (client coordinates), and the
  // mean time of a redraw at several zoom levels (forcing the raster with a pixel read).
  MapView.prototype.clientPointOf = function (id) {
    for (var i = 0; i < this.n; i++) {
      if (STR[ITEMS[this.items[i]][0]] === id) {
        var s = this.toScreen(this.xs[i], this.ys[i]), r = this.overlay.getBoundingClientRect();
        return { x: r.left + s[0], y: r.top + s[1], index: i };
      }
    }
    return null;
  };

  MapView.prototype.clientRectOf = function (x0, y0, x1, y1) {
    var a = this.toScreen(x0, y0), b = this.toScreen(x1, y1), r = this.overlay.getBoundingClientRect();
    return { left: r.left + Math.min(a[0], b[0]), top: r.top + Math.min(a[1], b[1]),
      right: r.left + Math.max(a[0], b[0]), bottom: r.top + Math.max(a[1], b[1]) };
  };

  MapView.prototype.bench = function (frames) {
    // Reading one pixel back through a small canvas makes the browser finish the raster.
    var probe = document.createElement("canvas");
    probe.width = probe.height = 1;
    var pctx = probe.getContext("2d", { willReadFrequently: true }), total = 0, worst = 0;
    var saved = { cx: this.view.cx, cy: this.view.cy, k: this.view.k };
    for (var f = 0; f < frames; f++) {
      this.view.k = saved.k * Math.pow(1.15, (f % 10) - 3);
      this.view.cx = saved.cx + (f % 3 - 1) * 20 / this.view.k;
      var t0 = performance.now();
      this.draw();
      pctx.drawImage(this.canvas, 0, 0, 1, 1);
      pctx.getImageData(0, 0, 1, 1);
      var ms = performance.now() - t0;
      total += ms;
      worst = Math.max(worst, ms);
    }
    this.view = saved;
    this.draw();
    return { points: this.n, frames: frames, mean_ms: total / frames, worst_ms: worst };
  };

  var views = api.maps = [];
  var figures = Array.prototype.slice.call(document.querySelectorAll("figure.imap"));
  function init(fig) {
    if (fig.dataset.ready) return;
    var script = fig.querySelector("script.imap-data");
    if (!script) return;
    fig.dataset.ready = "1";
    views[+fig.dataset.map] = new MapView(fig, JSON.parse(script.textContent));
  }
  function initAll() { figures.forEach(init); }
  api.loadAllHooks = api.loadAllHooks || [];
  api.loadAllHooks.push(initAll);
  api.mapsReady = function () { initAll(); return views.length; };
  if ("IntersectionObserver" in window) {
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) return;
        io.unobserve(entry.target);
        init(entry.target);
      });
    }, { rootMargin: "50% 0px 50% 0px" });
    figures.forEach(function (f) { io.observe(f); });
  } else {
    initAll();
  }
})();
