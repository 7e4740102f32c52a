// The consent step of the vote page: accept (then the page shows the first comparison) or decline (then it ends).
(function () {
  "use strict";
  const section = document.getElementById("consent");
  if (!section) return;
  const error = document.getElementById("consent-error");
  const buttons = section.querySelectorAll("button");

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const field = section.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  async function decide(accept) {
    buttons.forEach((button) => { button.disabled = true; });
    error.hidden = true;
    try {
      const response = await fetch(section.dataset.consentUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ accept: accept, version: Number(section.dataset.version) }),
      });
      const body = await response.json();
      if (!response.ok) {
        if (body.error && ["consent_declined", "consent_version"].includes(body.error.code)) {
          window.location.reload();
          return;
        }
        throw new Error(body.error ? body.error.message : "The answer could not be recorded.");
      }
      if (body.accepted) window.location.reload();
      else window.location.assign(body.exit_url);
    } catch (failure) {
      error.textContent = failure.message + " Please try again.";
      error.hidden = false;
      buttons.forEach((button) => { button.disabled = false; });
    }
  }

  document.getElementById("consent-accept").addEventListener("click", () => decide(true));
  document.getElementById("consent-decline").addEventListener("click", () => decide(false));
})();
