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

  function drawChart(rows) {
    const svg = $("chart");
    const rowHeight = 30;
    const left = 190;
    const width = Math.max(svg.clientWidth || 760, 420);
    const height = rows.length * rowHeight + 40;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("height", String(height));
    svg.replaceChildren(svg.querySelector("title"));
    if (!rows.length) return;
    const low = (r) => (r.ci_low === null ? r.rating : r.ci_low);
    const high = (r) => (r.ci_high === null ? r.rating : r.ci_high);
    const lows = rows.map(low);
    const highs = rows.map(high);
    const min = Math.min(...lows, 1000) - 20;
    const max = Math.max(...highs, 1000) + 20;
    const x = (value) => left + ((value - min) / (max - min)) * (width - left - 30);
    for (let tick = Math.ceil(min / 50) * 50; tick <= max; tick += 50) {
      svg.appendChild(element("line", { x1: x(tick), x2: x(tick), y1: 10, y2: height - 25, class: tick === 1000 ? "axis mean" : "axis" }));
      svg.appendChild(element("text", { x: x(tick), y: height - 8, class: "tick" }, String(tick)));
    }
    rows.forEach((row, i) => {
      const y = 25 + i * rowHeight;
      svg.appendChild(element("text", { x: left - 10, y: y + 4, class: "name" }, row.rank + ". " + row.display_name));
      svg.appendChild(element("line", { x1: x(low(row)), x2: x(high(row)), y1: y, y2: y, class: "interval" }));
      svg.appendChild(element("circle", { cx: x(row.rating), cy: y, r: 6, class: "point" }));
      const label = row.votes ? String(Math.round(row.rating)) : "no votes yet";
      svg.appendChild(element("text", { x: x(high(row)) + 8, y: y + 4, class: "value" }, label));
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
          cell("td", (100 * row.both_bad_rate).toFixed(0) + "%", "num")
        );
        return tr;
      })
    );
  }

  function drawHeatmap(pairwise) {
    const table = $("heatmap");
    const names = pairwise.display_names;
    const head = document.createElement("tr");
    head.append(cell("th", ""), ...names.map((n) => cell("th", n)));
    const rows = names.map((name, i) => {
      const tr = document.createElement("tr");
      tr.append(cell("th", name));
      pairwise.win_rate[i].forEach((rate, j) => {
        const td = cell("td", i === j || rate === null ? "" : Math.round(rate * 100) + "%");
        if (i !== j && rate !== null) {
          // Blue where the row generator wins, orange where it loses.
          const hue = rate >= 0.5 ? 215 : 25;
          const strength = Math.abs(rate - 0.5) * 2;
          td.style.setProperty("background-color", "hsl(" + hue + " 70% " + (95 - 40 * strength) + "%)");
        }
        tr.append(td);
      });
      return tr;
    });
    table.replaceChildren(head, ...rows);
  }

  function render(board) {
    $("meta").textContent =
      board.votes + " votes on this criterion; " + board.method + (board.updated_at ? "; updated " + new Date(board.updated_at).toLocaleTimeString() : "");
    drawChart(board.rows);
    drawTable(board.rows);
    drawHeatmap(board.pairwise);
  }

  async function load() {
    const params = new URLSearchParams({ criterion: $("criterion").value, category: $("category").value });
    const response = await fetch(root.dataset.url + "?" + params, { credentials: "same-origin" });
    if (response.ok) render(await response.json());
  }

  function listen() {
    if (!("WebSocket" in window)) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/campaigns/" + root.dataset.campaign + "/leaderboard/");
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
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
  const initial = JSON.parse($("initial-leaderboard").textContent);
  if (initial) render(initial);
  else load();
  listen();
})();
