// Filters that apply as soon as a choice is made: a <select data-auto-submit>
// submits its form on change. (The strict CSP forbids inline handlers.)
for (const select of document.querySelectorAll("select[data-auto-submit]")) {
  select.addEventListener("change", () => select.form.requestSubmit());
}
