// The add-policy form: the target list follows the chosen type and scope. Without script the
// whole catalog is offered, and the server decides as always.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("add-policy");
  if (!form) return;
  const type = form.elements.namedItem("type");
  const scope = form.elements.namedItem("scope");
  const target = form.elements.namedItem("target");
  const follow = () => {
    let first = null;
    for (const option of target.options) {
      const shown = option.dataset.type === type.value && option.dataset.scope === scope.value;
      option.hidden = !shown;
      option.disabled = !shown;
      if (shown && first === null) first = option;
    }
    if (target.selectedOptions.length === 0 || target.selectedOptions[0].disabled) {
      target.value = first ? first.value : "";
    }
  };
  type.addEventListener("change", follow);
  scope.addEventListener("change", follow);
  follow();
});
