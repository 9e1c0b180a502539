// The add-policy form: while the target is typed, the server suggests names of the chosen type
// (a bounded look-up, never the whole catalog). Without script the first names are offered, and
// the server decides as always (a bare name is resolved when it is unambiguous).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("add-policy");
  if (!form) return;
  const type = form.elements.namedItem("type");
  const target = form.elements.namedItem("target");
  const list = document.getElementById(target.getAttribute("list"));
  let asked = 0;
  let timer = null;
  const suggest = async () => {
    const mine = ++asked;
    const query = new URLSearchParams({ type: type.value, q: target.value });
    try {
      const answer = await fetch(`${target.dataset.suggest}?${query}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!answer.ok || mine !== asked) return;
      const { names } = await answer.json();
      list.replaceChildren(
        ...names.map((name) => {
          const option = document.createElement("option");
          option.value = name;
          return option;
        }),
      );
    } catch {
      // Suggestions are a convenience: the form works without them.
    }
  };
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(suggest, 150);
  };
  target.addEventListener("input", later);
  type.addEventListener("change", suggest);
});
