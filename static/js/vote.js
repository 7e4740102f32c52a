// The vote page: shows a comparison, takes one answer per criterion (mouse or keys 1-4),
// sends the votes, reveals the generators and swaps in the prefetched next comparison
// without a reload. When generation is behind it waits for a WebSocket push (or polls).
"use strict";

(function () {
  const arena = document.getElementById("arena");
  if (!arena) return;

  const $ = (id) => document.getElementById(id);
  const urls = {
    next: arena.dataset.nextUrl,
    queue: arena.dataset.queueUrl,
    votes: (token) => arena.dataset.votesUrl.replace("TOKEN", encodeURIComponent(token)),
    lease: (token) => arena.dataset.leaseUrl.replace("TOKEN", encodeURIComponent(token)),
  };
  const rows = Array.from(document.querySelectorAll("#criteria .criterion"));
  const LEASE_PING_MS = 4 * 60 * 1000;
  const POLL_MS = 3000;
  const REVEAL_MS = 2500;

  let current = null; // the comparison on screen
  let next = null; // the one prefetched behind it (a promise of a comparison or null)
  let nextReady = null; // the same comparison once it has arrived, so a vote can swap it in at once
  let answers = {};
  let votesCast = 0;
  let shownAt = 0;
  let sending = false;
  let leaseTimer = null;
  let waitTimer = null;
  let socket = null;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function setProgress(progress) {
    if (!progress) return;
    // A prefetched comparison carries the count from before the last vote: never go backwards.
    votesCast = Math.max(votesCast, progress.votes_cast);
    const cast = votesCast;
    let text = cast === 1 ? "1 comparison voted" : cast + " comparisons voted";
    if (progress.quota) {
      const left = Math.max(progress.quota - cast, 0);
      text += left > 0 ? "; " + left + " more to your completion code" : "; you have reached your completion code";
    }
    $("progress").textContent = text;
  }

  function fillGrid(grid, images, sideName) {
    const count = images.length;
    const cols = Math.ceil(Math.sqrt(count));
    grid.style.setProperty("--cols", String(cols));
    grid.style.setProperty("--rows", String(Math.ceil(count / cols)));
    grid.replaceChildren(
      ...images.map((url, i) => {
        const img = document.createElement("img");
        img.src = url;
        img.loading = "lazy";
        img.decoding = "async";
        img.alt = "Image " + (i + 1) + " of " + count + " in the " + sideName + " set";
        img.tabIndex = 0;
        return img;
      })
    );
  }

  function activeRow() {
    return rows.find((row) => !(row.dataset.key in answers)) || null;
  }

  function markActive() {
    const active = activeRow();
    rows.forEach((row) => row.classList.toggle("active", row === active));
  }

  function render(comparison, prefetchNext = true) {
    current = comparison;
    answers = {};
    sending = false;
    showError("");
    stopWaiting();
    $("prompt").textContent = comparison.prompt;
    fillGrid($("grid-left"), comparison.left.images, "left");
    fillGrid($("grid-right"), comparison.right.images, "right");
    rows.forEach((row) => row.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", "false")));
    $("sides").hidden = false;
    $("criteria").hidden = false;
    $("waiting").hidden = true;
    markActive();
    setProgress(comparison.progress);
    shownAt = performance.now();
    clearInterval(leaseTimer);
    leaseTimer = setInterval(() => post(urls.lease(comparison.token)), LEASE_PING_MS);
    nextReady = null;
    next = prefetchNext ? prefetch(comparison.token) : null;
  }

  function preload(comparison) {
    [...comparison.left.images, ...comparison.right.images].forEach((url) => {
      const img = new Image();
      img.src = url;
    });
  }

  async function prefetch(exclude) {
    const result = await post(urls.next, { exclude: [exclude] });
    if (result.ok) {
      preload(result.data);
      if (current && current.token === exclude) nextReady = result.data;
      return result.data;
    }
    return null;
  }

  function choose(row, choice) {
    if (!current || sending) return;
    answers[row.dataset.key] = choice;
    row.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.choice === choice)));
    markActive();
    if (rows.every((r) => r.dataset.key in answers)) submit();
  }

  async function submit() {
    sending = true;
    const comparison = current;
    const votes = rows.map((row) => ({ criterion: row.dataset.key, choice: answers[row.dataset.key] }));
    const dwell = Math.round(performance.now() - shownAt);
    const quota = comparison.progress ? comparison.progress.quota : null;
    const last = Boolean(quota) && votesCast + 1 >= quota;
    // The next comparison is already here: show it now, while the vote travels. The one after it
    // is fetched once the server has the vote (a participant holds at most two at a time).
    const ahead = last ? null : nextReady;
    if (ahead) render(ahead, false);
    // The vote brings the comparison after the one now on screen: one request per comparison.
    const body = { votes, dwell_ms: dwell };
    if (!last) body.next = { exclude: ahead ? [ahead.token] : [] };
    const result = await post(urls.votes(comparison.token), body);
    if (!result.ok) {
      const message = result.data && result.data.error ? result.data.error.message : "Your vote could not be sent.";
      if (result.data && result.data.error && result.data.error.code === "quota_reached") {
        location.href = arena.dataset.doneUrl;
        return;
      }
      if (firstStep(result)) return;
      if (ahead) {
        showError("Your last vote was not counted: " + message);
        if (current === ahead) next = prefetch(ahead.token);
        return;
      }
      sending = false;
      showError(message);
      // Too early: the same comparison stays, with the message, to be answered again after a look; moving
      // on would clear the message at once and drop a comparison the participant has barely seen.
      if (result.data && result.data.error && result.data.error.code === "too_early") return;
      if (result.status === 409 || result.status === 410) advance();
      return;
    }
    reveal(result.data);
    if (quota && result.data.votes_cast >= quota) {
      setTimeout(() => (location.href = arena.dataset.doneUrl), REVEAL_MS / 2);
      return;
    }
    const following = result.data.next || null;
    if (following) preload(following);
    if (ahead) {
      if (current === ahead && !next) {
        if (following) {
          nextReady = following;
          next = Promise.resolve(following);
        } else {
          next = prefetch(ahead.token);
        }
      }
      return;
    }
    if (following) {
      render(following);
      return;
    }
    advance();
  }

  function reveal(data) {
    const box = $("reveal");
    const standin = data.left.is_offline_standin || data.right.is_offline_standin ? " (offline stand-ins)" : "";
    box.textContent = "You compared: left was " + data.left.display_name + ", right was " + data.right.display_name + standin + ".";
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(() => (box.hidden = true), REVEAL_MS);
    setProgress({ votes_cast: data.votes_cast, quota: current && current.progress ? current.progress.quota : null });
  }

  async function advance() {
    const prefetched = next ? await next : null;
    if (prefetched) {
      render(prefetched);
      return;
    }
    await fetchNext();
  }

  // The campaign asks its consent or questionnaire first (it may have started asking since this page loaded):
  // the page itself shows the consent or leads to the questions.
  function firstStep(result) {
    const code = result.status === 403 && result.data && result.data.error ? result.data.error.code : "";
    if (code !== "consent_required" && code !== "questionnaire_required") return false;
    location.reload();
    return true;
  }

  async function fetchNext() {
    const result = await post(urls.next, {});
    if (result.ok) {
      render(result.data);
    } else if (firstStep(result)) {
      return;
    } else if (result.status === 409 && result.data && result.data.error.code === "quota_reached") {
      location.href = arena.dataset.doneUrl;
    } else if (result.status === 409 && result.data && result.data.error.code === "nothing_ready") {
      startWaiting(result.data.error.message);
    } else {
      showError(result.data && result.data.error ? result.data.error.message : "Something went wrong; reload the page.");
    }
  }

  function duration(seconds) {
    if (seconds < 60) return "about " + Math.max(1, seconds) + " s";
    return "about " + Math.round(seconds / 60) + " min";
  }

  function showQueue(queue) {
    if (!queue) return;
    let text =
      "Image sets ready: " + queue.ready + " of " + queue.wanted + "; being made now: " + queue.in_progress +
      "; waiting their turn: " + (queue.waiting === undefined ? 0 : queue.waiting) + ".";
    if (queue.images_per_s === null || queue.images_per_s === undefined) {
      if (queue.ready === 0) text += " No image set is finished yet, so there is no estimate yet.";
    } else {
      const speed = " At the measured " + queue.images_per_s.toFixed(1) + " images/s";
      if (queue.first_comparison_s) text += speed + ", the first comparison should be ready in " + duration(queue.first_comparison_s) + ".";
      else if (queue.all_ready_s) text += speed + ", every image set should be ready in " + duration(queue.all_ready_s) + ".";
    }
    $("queue").textContent = text;
  }

  async function refreshQueue() {
    const response = await fetch(urls.queue, { credentials: "same-origin" });
    if (response.ok) showQueue(await response.json());
  }

  function startWaiting(message) {
    current = null;
    $("sides").hidden = true;
    $("criteria").hidden = true;
    $("waiting").hidden = false;
    if (message) $("waiting-message").textContent = message + ". This page shows the next comparison as soon as one is ready.";
    refreshQueue();
    if (!socket && "WebSocket" in window) {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + "/ws/campaigns/" + arena.dataset.campaign + "/queue/");
      socket.onmessage = () => {
        if (!current) fetchNext();
      };
      socket.onclose = () => (socket = null);
    }
    // The in-memory channel layer cannot carry the worker's news across processes: poll as well.
    clearInterval(waitTimer);
    waitTimer = setInterval(() => {
      if (!current) {
        refreshQueue();
        fetchNext();
      }
    }, POLL_MS);
  }

  function stopWaiting() {
    clearInterval(waitTimer);
    waitTimer = null;
    if (socket) {
      socket.onclose = null;
      socket.close();
      socket = null;
    }
  }

  rows.forEach((row) =>
    row.querySelectorAll("button").forEach((button) => button.addEventListener("click", () => choose(row, button.dataset.choice)))
  );

  const KEYS = { 1: "left", 2: "right", 3: "tie", 4: "both_bad" };
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if ($("zoom").open) {
      if (event.key === "Escape") $("zoom").close();
      return;
    }
    const choice = KEYS[event.key];
    const row = activeRow();
    if (choice && row) {
      event.preventDefault();
      choose(row, choice);
    }
  });

  function zoom(event) {
    const img = event.target.closest(".grid img");
    if (!img || (event.type === "keydown" && event.key !== "Enter")) return;
    $("zoom-image").src = img.src;
    $("zoom").showModal();
  }
  $("sides").addEventListener("click", zoom);
  $("sides").addEventListener("keydown", zoom);
  $("zoom-close").addEventListener("click", () => $("zoom").close());
  $("zoom").addEventListener("click", (event) => {
    if (event.target === $("zoom")) $("zoom").close();
  });

  const initial = JSON.parse($("initial-comparison").textContent);
  const waiting = JSON.parse($("initial-waiting").textContent);
  if (initial) {
    render(initial);
  } else {
    startWaiting(waiting ? waiting.message : null);
    showQueue(waiting);
  }
})();
