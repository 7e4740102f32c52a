// Hands a finished MTurk assignment back at once; the button stays for browsers without JavaScript.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("mturk-submit");
  if (form) form.submit();
});
