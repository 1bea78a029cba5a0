// Portal behaviour without inline script (the Content-Security-Policy allows none):
//   <select data-autosubmit>       submits its form when changed (the tenant switcher);
//   <form data-confirm="Question?"> asks before it is submitted.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    const select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.submit();
  });
  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
})();
