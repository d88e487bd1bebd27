"use strict";
// The page's duplicates: the check of a dropped image, clusters by tier, resolve and undo.
// Loaded before app.js, whose helpers (el, state, els, getJSON, thumb, ...) these call.

// -- the check of a dropped image ------------------------------------------------------------
async function checkDuplicates(file) {
  const panel = els.dupPanel;
  const seq = ++state.dupSeq;
  panel.hidden = false;
  panel.dataset.state = "loading";
  panel.replaceChildren(el("p", { class: "muted" }, "Checking for duplicates…"));
  try {
    const image = await readAsDataURL(file);
    const json = { image };
    const body = await getJSON(inCollection("/duplicates/check"), { method: "POST", json });
    if (seq !== state.dupSeq) return;
    if (!body.duplicate) {
      panel.replaceChildren(el("p", { class: "ok" }, "No duplicates in this collection."));
    } else {
      const found = body.findings.map((d) => ({ id: d.id, kind: d.tier, note: evidence(d) }));
      panel.replaceChildren(
        el("p", { class: "warn" }, "Already here:"),
        el("ul", { class: "strip" }, ...found.map(figure)),
      );
    }
    panel.dataset.state = "ready";
  } catch (err) {
    if (seq !== state.dupSeq) return;
    const why = aboutFile(file, err).message;
    panel.replaceChildren(el("p", { class: "warn" }, `Duplicate check failed: ${why}`));
    panel.dataset.state = "error";
  }
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const TIER_NAMES = { identical: "identical file", same_image: "same image", similar: "similar" };

// A finding's tier and evidence against its original: "same image · 2 bits · cos 0.981".
function evidence({ tier, cosine, hamming }) {
  if (tier === "identical") return TIER_NAMES.identical;
  const bits = hamming === null || hamming === undefined ? "" : ` · ${plural(hamming, "bit")}`;
  return `${TIER_NAMES[tier]}${bits} · cos ${formatScore(cosine)}`;
}

function figure({ id, note, kind, keep = false }) {
  return el("li", { class: `figure${keep ? " keep" : ""}`, "data-testid": "duplicate",
    "data-id": id, "data-kind": kind, "data-keep": keep ? "true" : null },
    thumb(id), el("span", { class: "id", title: id }, id),
    el("span", { class: "muted" }, keep ? `${note} · keep` : note));
}

// -- duplicate clusters ----------------------------------------------------------------------
const CLUSTER_TITLES = { identical: "Identical files", same_image: "Same image",
  similar: "Similar shots" };

// Each member's evidence is against the representative (the oldest item), never a chain.
function cluster({ representative, keep, tier, members }, i) {
  const note = (m) => (m.tier === null ? "representative" : evidence(m));
  const figures = members.map((m) =>
    figure({ id: m.id, kind: m.tier || "representative", note: note(m), keep: m.id === keep }));
  const resolve = el("button", { type: "button", class: "secondary", "data-testid": "resolve" },
    "Keep the suggested, trash the others");
  const node = el("li", { class: `cluster ${tier}`, "data-testid": "cluster", "data-kind": tier,
    "data-representative": representative },
    el("h3", {}, `${i + 1}. ${CLUSTER_TITLES[tier]}`,
      el("span", { class: "muted" }, ` · ${members.length} items`)),
    el("ul", { class: "strip" }, ...figures), resolve);
  const trash = members.map((m) => m.id).filter((id) => id !== keep);
  resolve.addEventListener("click", () => resolveCluster(node, keep, trash));
  return node;
}

// Keep the suggested item, trash the others (metadata merged into the kept one); undo restores.
async function resolveCluster(node, keep, trash) {
  clearError();
  try {
    const json = { keep: [keep], trash, merge_metadata: true };
    const done = await getJSON(inCollection("/duplicates/resolve"), { method: "POST", json });
    const until = new Date(done.restorable_until).toLocaleDateString();
    const undo = el("button", { type: "button", class: "secondary", "data-testid": "undo" },
      "Undo");
    node.replaceChildren(el("p", { class: "ok", "data-testid": "resolved" },
      `Kept ${keep}; ${trash.length} moved to the trash (restorable until ${until}).`), undo);
    node.dataset.state = "resolved";
    undo.addEventListener("click", async () => {
      try {
        await getJSON(inCollection("/trash/restore"), { method: "POST", json: { ids: trash } });
        node.replaceChildren(el("p", { class: "muted", "data-testid": "restored" },
          `Restored ${trash.join(", ")}.`));
        node.dataset.state = "restored";
      } catch (err) { showError(err); }
    });
  } catch (err) {
    showError(err);
  }
}

async function findDuplicates(event) {
  event.preventDefault();
  clearError();
  showView("clusters");
  if (!state.collection) return showError("Pick a collection first.");
  const query = new URLSearchParams({ threshold: els.threshold.value, tier: els.tier.value });
  if (els.hamming.value.trim()) query.set("hamming", els.hamming.value.trim());
  els.clusters.setAttribute("aria-busy", "true");
  els.clustersStatus.textContent = "Looking for duplicates…";
  try {
    const body = await getJSON(inCollection(`/duplicates?${query}`));
    els.clusters.replaceChildren(...body.clusters.map(cluster));
    const n = body.clusters.length;
    const cuts = body.tier === "identical" ? "identical files"
      : `pHash ≤ ${plural(body.hamming, "bit")}${body.tier === "similar" ? `, cosine ≥ ${body.threshold}` : ""}`;
    els.clustersStatus.textContent = n
      ? `${n} cluster${n === 1 ? "" : "s"} (${cuts}); scores are to each cluster's first item.`
      : `No duplicates (${cuts}).`;
  } catch (err) {
    showError(err);
    els.clustersStatus.textContent = "The duplicate search failed.";
  } finally {
    els.clusters.setAttribute("aria-busy", "false");
    bump(els.clusters);
  }
}
