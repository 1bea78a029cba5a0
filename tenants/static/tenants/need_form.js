// Buttons in the suggestions fill the need form: reuse a label set, or subscribe to a live model.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-use-set], [data-use-model]");
    if (!button) return;
    event.preventDefault();
    if (button.dataset.useSet) {
      const select = document.getElementById("id_label_set");
      select.value = button.dataset.useSet;
      select.dispatchEvent(new Event("change", { bubbles: true }));
    }
    if (button.dataset.useModel) {
      const model = document.getElementById("id_subscribe_model");
      if (model) model.value = button.dataset.useModel;
      const select = document.getElementById("id_label_set");
      if (button.dataset.modelSet) select.value = button.dataset.modelSet;
    }
    button.textContent = button.dataset.chosenText || "✓";
  });
})();
