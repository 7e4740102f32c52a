// Staff campaign page: refreshes the progress numbers and tables from progress.json without a reload.
"use strict";
(() => {
  const POLL_MS = 3000;

  function fillTable(table, rows) {
    const columns = table.dataset.columns.split(" ");
    const body = table.tBodies[0];
    body.replaceChildren(
      ...rows.map((row) => {
        const tr = document.createElement("tr");
        columns.forEach((column, i) => {
          const td = document.createElement("td");
          td.textContent = String(row[column]);
          if (i > 0) td.className = "num";
          tr.appendChild(td);
        });
        return tr;
      })
    );
  }

  function render(data) {
    document.querySelectorAll("[data-stat]").forEach((el) => {
      if (el.dataset.stat in data) el.textContent = String(data[el.dataset.stat]);
    });
    document.querySelectorAll("table[data-rows]").forEach((table) => {
      const rows = data[table.dataset.rows];
      if (Array.isArray(rows)) fillTable(table, rows);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const panel = document.getElementById("progress-panel");
    const live = document.getElementById("live");
    if (!panel) return;
    async function poll() {
      try {
        const response = await fetch(panel.dataset.url, { headers: { Accept: "application/json" }, cache: "no-store" });
        if (!response.ok) throw new Error(String(response.status));
        render(await response.json());
        live.classList.add("on");
      } catch (error) {
        live.classList.remove("on");
      }
      setTimeout(poll, POLL_MS);
    }
    setTimeout(poll, POLL_MS);
  });
})();
