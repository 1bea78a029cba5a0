// Keyboard shortcuts of the reviewer's queue: C confirm, 1-9 pick a label, X correct with the
// picked labels, U unsure, S skip. Keys typed into text fields are left alone.
(function () {
  "use strict";
  const form = document.getElementById("verdict-form");
  if (!form) return;
  const submit = (id) => {
    const button = document.getElementById(id);
    if (button && typeof form.requestSubmit === "function") form.requestSubmit(button);
    else if (button) button.click();
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (event.target && event.target.tagName) || "";
    if (tag === "TEXTAREA" || (tag === "INPUT" && event.target.type === "text")) return;
    const key = event.key.toLowerCase();
    if (key === "c") { event.preventDefault(); submit("btn-confirm"); return; }
    if (key === "x") { event.preventDefault(); submit("btn-correct"); return; }
    if (key === "u") { event.preventDefault(); submit("btn-unsure"); return; }
    if (key === "s") { event.preventDefault(); submit("btn-skip"); return; }
    if (/^[1-9]$/.test(key)) {
      const input = form.querySelector(`input[name=labels][data-shortcut="${key}"]`);
      if (!input) return;
      event.preventDefault();
      input.checked = input.type === "radio" ? true : !input.checked;
      input.focus();
    }
  });
})();
