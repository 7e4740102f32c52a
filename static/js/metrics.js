// The leaderboard's population metrics: the per-generator table, a stacked bar of class shares per
// attribute (our own SVG), agreement with the crowd, and one prompt's images with their labels.
// Data comes from GET /api/v1/campaigns/SLUG/metrics; the category picker above filters it too.
"use strict";

(function () {
  const root = document.getElementById("metrics");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  // Classes named after colours are drawn in that colour (the toy domain's); others take this palette.
  const PALETTE = ["#4c6ef5", "#f59f00", "#37b24d", "#e64980", "#15aabf", "#7950f2", "#fd7e14", "#868e96"];
  const NAMED = {
    red: "#dc1e1e", orange: "#fa8c14", yellow: "#f0dc1e", green: "#1eaa28", blue: "#1e3cdc",
    purple: "#8c28aa", white: "#f5f5f5", black: "#0f0f0f", grey: "#808080", gray: "#808080",
  };
  let latest = null;

  function svgElement(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attributes).forEach(([key, value]) => node.setAttribute(key, String(value)));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function cell(tag, text, className) {
    const node = document.createElement(tag);
    node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  const fixed = (value, digits) => (value === null || value === undefined ? "–" : value.toFixed(digits));
  const percent = (value) => (value === null || value === undefined ? "–" : Math.round(100 * value) + "%");
  const interval = (ci, digits) => (ci ? fixed(ci[0], digits) + " – " + fixed(ci[1], digits) : "–");

  function colourOf(name, index) {
    return NAMED[name.toLowerCase()] || PALETTE[index % PALETTE.length];
  }

  function topClass(shares) {
    if (!shares) return "–";
    const [name, share] = Object.entries(shares).sort((a, b) => b[1] - a[1])[0];
    return name + " " + percent(share);
  }

  function drawTable(data) {
    const table = $("metrics-table");
    const head = document.createElement("tr");
    head.append(cell("th", "Generator"), cell("th", "Sets"));
    data.attributes.forEach((a) => {
      head.append(
        cell("th", a.name + ": most common (pooled)"),
        cell("th", a.name + ": discrepancy, pooled [95%]"),
        cell("th", a.name + ": discrepancy, per-prompt mean"),
        cell("th", a.name + ": entropy"),
        cell("th", a.name + ": classes seen")
      );
    });
    head.append(
      cell("th", "Vendi (N=" + data.population_size + ") [95%]"),
      cell("th", "Faithful [95%]"),
      cell("th", "CLIP score [95%]")
    );
    table.querySelector("thead").replaceChildren(head);
    table.querySelector("tbody").replaceChildren(
      ...data.rows.map((row) => {
        const tr = document.createElement("tr");
        tr.dataset.generator = row.generator;
        tr.append(cell("td", row.display_name), cell("td", String(row.populations), "num"));
        data.attributes.forEach((a) => {
          const m = row.attributes[a.name];
          tr.append(
            cell("td", topClass(m.shares), "top-class"),
            cell("td", fixed(m.discrepancy, 2) + (m.discrepancy_ci ? " [" + interval(m.discrepancy_ci, 2) + "]" : ""), "num"),
            cell("td", fixed(m.per_prompt.discrepancy, 2), "num"),
            cell("td", fixed(m.entropy, 2), "num"),
            cell("td", m.shares ? m.distinct + " of " + a.classes.length : "–", "num")
          );
        });
        // Each with its bootstrap interval over prompts where there is one (none from a single prompt).
        tr.append(
          cell("td", fixed(row.vendi, 2) + (row.vendi_ci ? " [" + interval(row.vendi_ci, 2) + "]" : ""), "num vendi"),
          cell("td", percent(row.faithfulness) + (row.faithfulness_ci ? " [" + percent(row.faithfulness_ci[0]) + " – " + percent(row.faithfulness_ci[1]) + "]" : ""), "num faithfulness"),
          cell("td", fixed(row.clip_score, 1) + (row.clip_score_ci ? " [" + interval(row.clip_score_ci, 1) + "]" : ""), "num clip-score")
        );
        return tr;
      })
    );
    $("metrics-legend").textContent =
      "Pooled: all of a generator's images counted together (as PopAlign). Per-prompt mean: each prompt measured on its own, then averaged. " +
      "Discrepancy is the distance of the class shares from the target (0 is on target; lower is better). " +
      "An attribute counts only the prompts that leave it open (on 'a red circle' red was asked for, not a skew). " +
      "Intervals are bootstraps over prompts. Labels come from an automatic classifier and carry its errors.";
  }

  function drawShares(data) {
    const holder = $("share-charts");
    holder.replaceChildren();
    data.attributes.forEach((attribute) => {
      const figure = document.createElement("figure");
      figure.className = "chart share-chart";
      figure.dataset.attribute = attribute.name;
      const rowHeight = 30;
      const width = Math.max(holder.clientWidth || 760, 280);
      // On a phone the names get a third of the width and are shortened; the tooltip has them whole.
      const left = Math.min(190, Math.round(width * 0.32));
      const columns = Math.max(1, Math.min(4, Math.floor((width - 20) / 120)));
      const column = (width - 20) / columns;
      const legendRows = Math.ceil(attribute.classes.length / columns);
      const height = data.rows.length * rowHeight + 24 + legendRows * 22;
      const svg = svgElement("svg", { viewBox: "0 0 " + width + " " + height, height: height, role: "img" });
      svg.appendChild(svgElement("title", {}, "Share of each " + attribute.name + " per generator"));
      const barWidth = width - left - 10;
      const nameChars = Math.max(4, Math.floor((left - 14) / 7));
      data.rows.forEach((row, i) => {
        const y = 10 + i * rowHeight;
        const short = row.display_name.length > nameChars ? row.display_name.slice(0, nameChars - 1) + "…" : row.display_name;
        const name = svgElement("text", { x: left - 8, y: y + 15, class: "name" }, short);
        name.appendChild(svgElement("title", {}, row.display_name));
        svg.appendChild(name);
        const shares = row.attributes[attribute.name].shares;
        if (!shares) {
          svg.appendChild(svgElement("text", { x: left, y: y + 15, class: "value" }, "not measured yet"));
          return;
        }
        let x = left;
        attribute.classes.forEach((name, k) => {
          const w = shares[name] * barWidth;
          if (w <= 0) return;
          const rect = svgElement("rect", { x: x, y: y, width: w, height: 20, fill: colourOf(name, k), class: "segment" });
          rect.appendChild(svgElement("title", {}, row.display_name + ": " + name + " " + percent(shares[name])));
          svg.appendChild(rect);
          // A label goes inside its segment only where it fits; the tooltip and the table carry the rest.
          const label = name + " " + percent(shares[name]);
          if (w > label.length * 7 + 8) {
            const dark = ["yellow", "white", "orange"].includes(name.toLowerCase());
            svg.appendChild(svgElement("text", { x: x + w / 2, y: y + 14, class: dark ? "inside dark" : "inside" }, label));
          }
          x += w;
        });
      });
      const legendTop = 24 + data.rows.length * rowHeight;
      attribute.classes.forEach((name, k) => {
        const lx = 10 + (k % columns) * column;
        const ly = legendTop + Math.floor(k / columns) * 22;
        svg.appendChild(svgElement("rect", { x: lx, y: ly - 10, width: 12, height: 12, fill: colourOf(name, k), class: "segment" }));
        const maxChars = Math.max(4, Math.floor((column - 24) / 7));
        const shown = name.length > maxChars ? name.slice(0, maxChars - 1) + "…" : name;
        svg.appendChild(svgElement("text", { x: lx + 17, y: ly, class: "legend" }, shown));
      });
      figure.appendChild(svg);
      const caption = document.createElement("figcaption");
      caption.textContent =
        attribute.name + " (" + attribute.backend + (attribute.model ? ", " + attribute.model : "") + "): share of each class over all of a generator's images.";
      figure.appendChild(caption);
      holder.appendChild(figure);
    });
  }

  function drawAgreement(data, refused) {
    const body = $("agreement-table").querySelector("tbody");
    const rows = refused ? [] : data.agreement;
    body.replaceChildren(
      ...rows.map((a) => {
        const tr = document.createElement("tr");
        const hidden = a.suppressed ? "hidden (fewer than " + data.group.min_group_size + " of the group voted)" : null;
        tr.append(
          cell("td", a.criterion),
          cell("td", a.measure + " (" + a.better + " is better)"),
          cell("td", hidden || (a.votes ? percent(a.share) : "no votes yet"), "num"),
          cell("td", a.votes ? percent(a.ci_low) + " – " + percent(a.ci_high) : "–", "num"),
          cell("td", a.votes === null ? "–" : String(a.votes), "num"),
          cell("td", a.spearman === null ? "–" : a.spearman.toFixed(2), "num")
        );
        return tr;
      })
    );
    // Whose votes, and which interval: the whole crowd's share has a Wilson interval, a group's (like its
    // board) one from a bootstrap over its participants.
    const scope = $("agreement-scope");
    if (!scope) return;
    if (refused) scope.textContent = "This group's agreement is not shown: " + refused;
    else if (data.group)
      scope.textContent =
        "Votes of the group " + data.group.question + ": " + data.group.value + " (" + data.group.participants +
        " participants) only; 95% intervals from a bootstrap over its participants, rank correlation with its board.";
    else scope.textContent = "Everyone's counted votes; 95% Wilson intervals.";
  }

  function drawPromptPicker(data) {
    const select = $("metrics-prompt");
    if (!select) return; // the per-prompt view is for the campaign's managers only
    const current = select.value;
    select.replaceChildren(...data.prompts.map((p) => {
      const option = cell("option", p.caption + (p.category ? " (" + p.category + ")" : ""));
      option.value = String(p.id);
      return option;
    }));
    if (data.prompts.some((p) => String(p.id) === current)) select.value = current;
    if (select.value) loadPrompt(select.value);
  }

  function drawPrompt(view) {
    const holder = $("prompt-view");
    holder.replaceChildren(
      ...view.generators.map((side) => {
        const block = document.createElement("div");
        block.className = "prompt-side";
        block.dataset.generator = side.generator;
        const shares = Object.entries(side.attributes).map(([name, m]) => name + ": " + topClass(m.shares)).join(", ");
        block.append(cell("h4", side.display_name), cell("p", shares + (side.vendi !== null ? ", Vendi " + fixed(side.vendi, 2) : ""), "hint"));
        const grid = document.createElement("div");
        grid.className = "labelled-grid";
        side.images.forEach((image) => {
          const figure = document.createElement("figure");
          const img = document.createElement("img");
          img.src = image.url;
          img.alt = "";
          img.loading = "lazy";
          const labels = view.attributes.map((name) => image.labels[name] || "none").join(" / ");
          figure.append(img, cell("figcaption", labels));
          grid.appendChild(figure);
        });
        block.appendChild(grid);
        return block;
      })
    );
  }

  async function loadPrompt(id) {
    const url = root.dataset.promptUrl.replace(/\/0$/, "/" + encodeURIComponent(id));
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (response.ok) drawPrompt(await response.json());
  }

  async function fetchMetrics(group) {
    const params = new URLSearchParams();
    const category = $("category") ? $("category").value : "";
    if (category) params.set("category", category);
    if (group) params.set("group", group);
    const query = params.toString();
    return fetch(root.dataset.url + (query ? "?" + query : ""), { headers: { Accept: "application/json" } });
  }

  async function load() {
    // The leaderboard's group selector picks whose votes the agreement is computed on.
    const group = $("group") ? $("group").value : "";
    let response = await fetchMetrics(group);
    let refused = null;
    if (group && response.status === 403) {
      // A group under k shows no agreement; the rest of the section is everyone's and stays.
      const body = await response.json().catch(() => null);
      refused = body && body.error ? body.error.message : "not available";
      response = await fetchMetrics("");
    }
    if (!response.ok) {
      // Say why rather than leave the section empty: a campaign whose metrics configuration no
      // longer reads (a CLIP folder moved) answers 409 with a message naming the field and folder.
      let message = "Population metrics could not be loaded (HTTP " + response.status + ").";
      try {
        const body = await response.json();
        if (body && body.error && body.error.message) message = "Population metrics cannot be shown: " + body.error.message + ".";
      } catch (error) { /* not JSON: keep the plain message */ }
      latest = null;
      $("metrics-body").hidden = true;
      $("metrics-note").textContent = message;
      $("metrics-note").classList.add("error");
      root.dataset.error = "true";
      return;
    }
    const data = await response.json();
    latest = data;
    $("metrics-body").hidden = false;
    $("metrics-note").classList.remove("error");
    delete root.dataset.error;
    if (!data.attributes.length) {
      $("metrics-body").hidden = true;
      $("metrics-note").textContent = "This campaign measures no attributes: set its metrics configuration to see population metrics here.";
      return;
    }
    drawTable(data);
    drawShares(data);
    drawAgreement(data, refused);
    drawPromptPicker(data);
    root.dataset.loaded = "true";
  }

  if ($("metrics-prompt")) $("metrics-prompt").addEventListener("change", (event) => loadPrompt(event.target.value));
  if ($("category")) $("category").addEventListener("change", load);
  if ($("group")) $("group").addEventListener("change", load);
  window.addEventListener("resize", () => { if (latest) drawShares(latest); });
  load();
})();
