// The leaderboard page: renders ratings with intervals, the table and the pairwise heatmap
// from the JSON API, and re-renders whenever the server pushes a new fit over the WebSocket.
"use strict";

(function () {
  const root = document.getElementById("leaderboard");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  let socket = null;

  function element(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attributes).forEach(([key, value]) => node.setAttribute(key, String(value)));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Width of `text` in the chart's own font and size (the class sets both), measured in place.
  function textWidth(svg, text, className) {
    const probe = element("text", { class: className, x: 0, y: -100 }, text);
    svg.appendChild(probe);
    const width = probe.getComputedTextLength();
    probe.remove();
    return width;
  }

  // Break a name into at most `maxLines` lines no wider than `budget`, on spaces; what still
  // does not fit ends in an ellipsis. Returns the lines and whether anything was cut.
  function wrapName(svg, name, budget, maxLines) {
    const fits = (text) => textWidth(svg, text, "name") <= budget;
    const shorten = (text) => {
      let cut = text;
      while (cut.length > 1 && !fits(cut + "…")) cut = cut.slice(0, -1);
      return cut.trimEnd() + "…";
    };
    const lines = [];
    let current = "";
    let cut = false;
    const words = name.split(/\s+/).filter(Boolean);
    for (let i = 0; i < words.length; i++) {
      const candidate = current ? current + " " + words[i] : words[i];
      if (fits(candidate)) {
        current = candidate;
        continue;
      }
      const rest = words.slice(i).join(" ");
      // On the last line allowed, everything left goes on it, shortened.
      if (lines.length === maxLines - 1) return { lines: [...lines, shorten(current ? current + " " + rest : rest)], cut: true };
      if (current) {
        lines.push(current);
        current = words[i];
        if (fits(current)) continue;
        if (lines.length === maxLines - 1) return { lines: [...lines, shorten(rest)], cut: true };
      }
      // One word wider than the whole budget.
      lines.push(shorten(words[i]));
      current = "";
      cut = true;
    }
    if (current) lines.push(current);
    return { lines, cut };
  }

  const LINE_HEIGHT = 15;
  let lastRows = [];

  function drawChart(rows) {
    lastRows = rows;
    const svg = $("chart");
    // Draw at the element's own width, so text keeps its size and a phone gets a narrower chart
    // rather than a shrunken one.
    const width = Math.max(svg.clientWidth || 760, 240);
    svg.replaceChildren(svg.querySelector("title"));
    if (!rows.length) {
      svg.setAttribute("viewBox", "0 0 " + width + " 40");
      svg.setAttribute("height", "40");
      return;
    }
    // Names get up to 40% of the width (45% on a phone); long ones wrap onto a second line
    // and are shortened past that, with the full name as the label's tooltip.
    const budget = width * (width < 600 ? 0.45 : 0.4);
    const labels = rows.map((row) => {
      const name = row.rank + ". " + row.display_name;
      return { name, ...wrapName(svg, name, budget, 2) };
    });
    const widest = Math.max(...labels.flatMap((label) => label.lines.map((line) => textWidth(svg, line, "name"))));
    const left = Math.ceil(widest) + 16;
    const values = rows.map((row) => (row.votes ? String(Math.round(row.rating)) : "no votes yet"));
    const right = Math.ceil(Math.max(...values.map((value) => textWidth(svg, value, "value")))) + 16;
    const rowHeights = labels.map((label) => Math.max(30, label.lines.length * LINE_HEIGHT + 15));
    const top = 10;
    const height = top + rowHeights.reduce((a, b) => a + b, 0) + 30;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("height", String(height));
    const low = (r) => (r.ci_low === null ? r.rating : r.ci_low);
    const high = (r) => (r.ci_high === null ? r.rating : r.ci_high);
    const lows = rows.map(low);
    const highs = rows.map(high);
    const min = Math.min(...lows, 1000) - 20;
    const max = Math.max(...highs, 1000) + 20;
    const plot = Math.max(width - left - right, 40);
    const x = (value) => left + ((value - min) / (max - min)) * plot;
    // Fewer ticks where the plot is narrow, so their numbers do not run into each other.
    const step = plot / ((max - min) / 50) < 36 ? 100 : 50;
    for (let tick = Math.ceil(min / step) * step; tick <= max; tick += step) {
      svg.appendChild(element("line", { x1: x(tick), x2: x(tick), y1: top, y2: height - 25, class: tick === 1000 ? "axis mean" : "axis" }));
      svg.appendChild(element("text", { x: x(tick), y: height - 8, class: "tick" }, String(tick)));
    }
    let y0 = top;
    rows.forEach((row, i) => {
      const label = labels[i];
      const y = y0 + rowHeights[i] / 2;
      const text = element("text", { x: left - 10, y: y + 4 - ((label.lines.length - 1) * LINE_HEIGHT) / 2, class: "name" });
      text.dataset.fullName = label.name;
      label.lines.forEach((line, j) => text.appendChild(element("tspan", { x: left - 10, dy: j ? LINE_HEIGHT : 0 }, line)));
      if (label.cut) text.appendChild(element("title", {}, label.name));
      svg.appendChild(text);
      svg.appendChild(element("line", { x1: x(low(row)), x2: x(high(row)), y1: y, y2: y, class: "interval" }));
      svg.appendChild(element("circle", { cx: x(row.rating), cy: y, r: 6, class: "point" }));
      svg.appendChild(element("text", { x: x(high(row)) + 8, y: y + 4, class: "value" }, values[i]));
      y0 += rowHeights[i];
    });
  }

  function cell(tag, text, className) {
    const node = document.createElement(tag);
    node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function drawTable(rows) {
    const body = $("board").querySelector("tbody");
    body.replaceChildren(
      ...rows.map((row) => {
        const tr = document.createElement("tr");
        tr.dataset.generator = row.generator;
        tr.append(
          cell("td", String(row.rank)),
          cell("td", row.display_name),
          cell("td", row.rating.toFixed(1), "num"),
          cell("td", row.ci_low === null ? "–" : row.ci_low.toFixed(0) + " – " + row.ci_high.toFixed(0), "num"),
          cell("td", String(row.votes), "num"),
          cell("td", String(row.wins), "num"),
          cell("td", String(row.losses), "num"),
          cell("td", String(row.ties), "num"),
          cell("td", row.both_bad_rate === undefined ? "–" : (100 * row.both_bad_rate).toFixed(0) + "%", "num")
        );
        return tr;
      })
    );
  }

  function drawHeatmap(pairwise) {
    const table = $("heatmap");
    if (!pairwise) {
      // A group's board carries no heatmap: the whole crowd's stays off rather than mislabelled.
      table.replaceChildren();
      return;
    }
    const names = pairwise.display_names;
    const head = document.createElement("tr");
    head.append(cell("th", ""), ...names.map((n) => cell("th", n)));
    const rows = names.map((name, i) => {
      const tr = document.createElement("tr");
      tr.append(cell("th", name));
      pairwise.win_rate[i].forEach((rate, j) => {
        const td = cell("td", i === j || rate === null ? "" : Math.round(rate * 100) + "%");
        if (i !== j && rate !== null) {
          // Blue where the row generator wins, orange where it loses. No lighter than 65%: the darkest blue
          // keeps the text's contrast at 5.6:1 (WCAG AA asks 4.5:1; at 55% it was 4.0:1).
          const hue = rate >= 0.5 ? 215 : 25;
          const strength = Math.abs(rate - 0.5) * 2;
          td.style.setProperty("background-color", "hsl(" + hue + " 70% " + (95 - 30 * strength) + "%)");
        }
        tr.append(td);
      });
      return tr;
    });
    table.replaceChildren(head, ...rows);
  }

  // What the intervals are, in words: live boards carry closed-form ones, the bootstrap comes on request.
  const INTERVAL_WORDS = {
    sandwich: "closed-form (sandwich) intervals, live",
    bootstrap: "bootstrap intervals",
    "participant bootstrap": "intervals from resampling participants",
  };

  function intervalWords(board) {
    const level = Math.round(100 * (board.interval_level || 0.95)) + "% ";
    const words = INTERVAL_WORDS[board.intervals] || "intervals";
    return level + words + (board.intervals !== "sandwich" && board.bootstrap_rounds ? " (" + board.bootstrap_rounds + " rounds)" : "");
  }

  function render(board) {
    const who = board.group ? " from the group " + board.group.question + ": " + board.group.value + " (" + board.group.participants + " participants)" : "";
    $("meta").textContent =
      board.votes + " votes on this criterion" + who + "; " + board.method + "; " + intervalWords(board) +
      (board.updated_at ? "; updated " + new Date(board.updated_at).toLocaleTimeString() : "");
    $("interval-kind").textContent = intervalWords(board);
    root.dataset.intervals = board.intervals || "";
    drawChart(board.rows);
    drawTable(board.rows);
    drawHeatmap(board.pairwise);
  }

  function group() {
    return $("group") ? $("group").value : "";
  }

  // A group's board is never pushed live: while one is shown, pushes of the whole crowd's board wait.
  function wantsBootstrap() {
    return $("bootstrap").checked || group() !== "";
  }

  async function getJson(url, params) {
    const response = await fetch(url + "?" + new URLSearchParams(params), { credentials: "same-origin" });
    const body = await response.json().catch(() => null);
    return { ok: response.ok, body };
  }

  function refusal(body) {
    return body && body.error ? body.error.message : "not available";
  }

  async function load() {
    const params = {
      criterion: $("criterion").value,
      category: $("category").value,
      intervals: $("bootstrap").checked ? "bootstrap" : "sandwich",
    };
    if (group()) params.group = group();
    const { ok, body } = await getJson(root.dataset.url, params);
    if (ok) render(body);
    else if (group()) {
      $("meta").textContent = "This group's board is not shown: " + refusal(body);
      drawChart([]);
      drawTable([]);
      drawHeatmap(null);
    }
  }

  function fillTable(id, rows) {
    const table = $(id);
    table.querySelector("tbody").replaceChildren(
      ...rows.map((values) => {
        const tr = document.createElement("tr");
        tr.append(...values.map((value, i) => cell("td", value, i ? "num" : "")));
        return tr;
      })
    );
    table.hidden = rows.length === 0;
  }

  const span = (low, high) => (low === null || high === null ? "–" : low.toFixed(0) + " – " + high.toFixed(0));
  const share = (value) => (value === null ? "hidden (small group)" : (100 * value).toFixed(1) + "%");

  async function testGroups(event) {
    event.preventDefault();
    $("group-test-result").textContent = "Testing…";
    const { ok, body } = await getJson($("group-test").dataset.url, {
      question: $("test-question").value,
      criterion: $("criterion").value,
      category: $("category").value,
    });
    if (!ok) {
      $("group-test-result").textContent = refusal(body);
      fillTable("group-sizes", []);
      fillTable("group-differences", []);
      return;
    }
    const hidden = body.suppressed_groups ? "; " + body.suppressed_groups + " smaller group(s) left out" : "";
    $("group-test-result").textContent =
      "p = " + body.p_value.toFixed(3) + " (likelihood ratio " + body.statistic.toFixed(2) + ", " + body.permutations +
      " permutations)" + hidden + ". Differences are against the largest group, " + body.reference + ".";
    fillTable("group-sizes", body.groups.map((g) => [g.value, String(g.participants), String(g.votes), g.rows[0] ? g.rows[0].display_name : "–"]));
    fillTable(
      "group-differences",
      body.differences.map((d) => [d.display_name, d.group, d.difference === null ? "–" : d.difference.toFixed(1), span(d.ci_low, d.ci_high)])
    );
  }

  async function showWeighted() {
    $("weighted-meta").textContent = "Weighting…";
    const { ok, body } = await getJson($("weighted").dataset.url, { criterion: $("criterion").value, category: $("category").value });
    if (!ok) {
      $("weighted-meta").textContent = refusal(body);
      fillTable("weighted-board", []);
      fillTable("weighted-composition", []);
      return;
    }
    const empty = body.empty_cells.length
      ? " No participants in the target cell(s) " + body.empty_cells.map((c) => c.margin + ": " + c.cell.join(" / ")).join(", ") + ": they cannot be matched."
      : "";
    $("weighted-meta").textContent =
      body.participants + " participants weighted, effective sample size " + body.effective_size.toFixed(1) +
      "; weights capped at " + body.cap + " times the mean" + (body.converged ? "." : " (the cap kept the targets from being met exactly).") + empty;
    const unweighted = Object.fromEntries(body.unweighted.rows.map((r) => [r.generator, r]));
    fillTable(
      "weighted-board",
      body.weighted.rows.map((r) => {
        const u = unweighted[r.generator];
        return [r.display_name, r.rating.toFixed(1), span(r.ci_low, r.ci_high), u ? u.rating.toFixed(1) : "–", u ? span(u.ci_low, u.ci_high) : "–"];
      })
    );
    fillTable(
      "weighted-composition",
      body.composition.map((c) => [c.margin, c.cell.join(" / "), share(c.target), share(c.sample), share(c.weighted)])
    );
  }

  function listen() {
    if (!("WebSocket" in window)) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/campaigns/" + root.dataset.campaign + "/leaderboard/");
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      // Live pushes carry closed-form intervals: while the bootstrap is asked for, they wait.
      if (wantsBootstrap()) return;
      if (message.criterion === $("criterion").value && (message.category || "") === $("category").value) {
        render(message);
      }
    };
    socket.onopen = () => {
      $("live").classList.add("on");
      subscribe();
    };
    socket.onclose = () => {
      $("live").classList.remove("on");
      setTimeout(listen, 3000);
    };
  }

  function subscribe() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ criterion: $("criterion").value, category: $("category").value }));
    }
  }

  $("criterion").addEventListener("change", () => {
    subscribe();
    load();
  });
  $("category").addEventListener("change", () => {
    subscribe();
    load();
  });
  if ($("group")) {
    $("group").addEventListener("change", () => {
      $("live").classList.toggle("paused", wantsBootstrap());
      load();
    });
  }
  if ($("group-test-form")) $("group-test-form").addEventListener("submit", testGroups);
  if ($("weighted-show")) $("weighted-show").addEventListener("click", showWeighted);
  $("bootstrap").addEventListener("change", () => {
    $("live").classList.toggle("paused", wantsBootstrap());
    load();
  });
  const initial = JSON.parse($("initial-leaderboard").textContent);
  if (initial) render(initial);
  else load();
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => drawChart(lastRows), 150);
  });
  listen();
})();
