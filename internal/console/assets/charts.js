// Draws an app's dashboard from its metrics history (GET …/metrics) with
// uPlot, and redraws it every 30 seconds. Each chart's figure carries
// data-points, the number of values it shows, and a text summary for
// screen readers.
(function () {
  "use strict";
  var root = document.getElementById("charts");
  if (!root || !window.uPlot) return;
  var colors = ["#137333", "#0b5cad", "#8a5a00", "#b3261e", "#6a1b9a", "#00838f", "#5d4037", "#455a64"];

  function charts(m) {
    var ex = m.ByExecutor || [];
    var list = [
      { id: "requests", title: "Requests by status class", unit: "requests",
        series: [["2xx", m.Requests2xx], ["3xx", m.Requests3xx], ["4xx", m.Requests4xx], ["5xx", m.Requests5xx]] },
      { id: "latency", title: "Latency (ms)", unit: "ms", series: [["p50", m.LatencyP50MS], ["p99", m.LatencyP99MS]] },
      { id: "memory", title: "Memory per executor (MiB), against its limit", unit: "MiB",
        series: ex.map(function (e) { return [e.ID.slice(0, 12), e.MemoryMiB]; })
          .concat(ex.length ? [["limit", ex[0].MemoryLimitMiB, true]] : []) },
      { id: "cpu", title: "CPU per executor (% of a vCPU)", unit: "%",
        series: ex.map(function (e) { return [e.ID.slice(0, 12), e.CPUPercent]; }) },
      { id: "executors", title: "Executors, restarts and OOM kills", unit: "",
        series: [["executors", m.Executors], ["restarts", m.Restarts], ["OOM kills", m.OOMKills]] },
      { id: "workflows", title: "Workflows and queue depth", unit: "workflows",
        series: [["started", m.WorkflowsStarted], ["completed", m.WorkflowsCompleted], ["failed", m.WorkflowsFailed], ["queued", m.QueueDepth]] }
    ];
    return list;
  }

  function count(values) {
    var n = 0;
    (values || []).forEach(function (v) { if (v !== null && v !== undefined) n++; });
    return n;
  }

  function latest(values) {
    for (var i = (values || []).length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  }

  function draw(m) {
    root.textContent = "";
    var width = Math.max(260, Math.min(root.clientWidth, 560) - 8);
    charts(m).forEach(function (c) {
      var fig = document.createElement("figure");
      fig.className = "chart";
      fig.id = "chart-" + c.id;
      var h = document.createElement("h2");
      h.textContent = c.title;
      fig.appendChild(h);
      var points = 0, summary = [];
      c.series.forEach(function (s) {
        points += count(s[1]);
        var l = latest(s[1]);
        if (l !== null) summary.push(s[0] + " " + Math.round(l * 10) / 10);
      });
      fig.setAttribute("data-points", String(points));
      fig.setAttribute("role", "img");
      fig.setAttribute("aria-label", c.title + ": " + (summary.length ? "latest " + summary.join(", ") : "no data yet"));
      root.appendChild(fig);
      var data = [m.Times].concat(c.series.map(function (s) { return s[1] || []; }));
      var series = [{}].concat(c.series.map(function (s, i) {
        return { label: s[0], stroke: s[2] ? "#999" : colors[i % colors.length], dash: s[2] ? [6, 4] : undefined,
                 width: 1.5, spanGaps: false, points: { show: count(s[1]) < 3 } };
      }));
      new uPlot({ width: width, height: 200, series: series, axes: [{}, { size: 50 }], scales: { x: { time: true } } }, data, fig);
    });
  }

  function load() {
    fetch(root.getAttribute("data-metrics"), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(draw)
      .catch(function (e) { root.textContent = "The metrics could not be loaded: " + e.message; });
  }
  load();
  setInterval(load, 30000);
})();
