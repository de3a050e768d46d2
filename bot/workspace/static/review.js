// 同心 review page: label a message, run the gated retraining (admins) and
// show its figures, roll back to a kept model version. No outside scripts.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  async function request(method, url, body) {
    const res = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: method === "GET" ? undefined : JSON.stringify(body || {}),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error || res.statusText);
    return data;
  }

  function say(el, text, isError) {
    el.textContent = text;
    el.classList.toggle("error", !!isError);
  }

  document.querySelectorAll("table.review tr[data-key]").forEach((row) => {
    row.querySelectorAll("button.label-as").forEach((button) => {
      button.addEventListener("click", async () => {
        const action = button.dataset.action;
        const select = action === "intent" ? row.querySelector("select.intent")
          : action === "faq" ? row.querySelector("select.faq") : null;
        const url = "/staff/api/review/items/" + encodeURIComponent(row.dataset.key) + "/label";
        button.disabled = true;
        try {
          await request("POST", url, { action, value: select ? select.value : null });
          row.remove();
          if (!document.querySelector("table.review tr[data-key]")) window.location.reload();
        } catch (err) {
          button.disabled = false;
          window.alert("没有成功：" + err.message);
        }
      });
    });
  });

  function figures(f) {
    return f ? (f.accuracy * 100).toFixed(2) + "% / " + f.macro_f1.toFixed(4) : "—";
  }

  function showResult(job) {
    const box = document.getElementById("retrain-result");
    const state = document.getElementById("retrain-state");
    if (!box) return;
    box.textContent = "";
    if (job.error) {
      if (state) say(state, "训练失败：" + job.error, true);
      return;
    }
    const r = job.result;
    if (!r) return;
    const p = document.createElement("p");
    p.className = r.accepted ? "gate accepted" : "gate refused error";
    p.textContent = r.accepted
      ? "已启用新模型 " + r.version + "（准确率 / macro-F1）：当前 " + figures(r.before) + " → 新 " + figures(r.after)
      : "已拒绝，当前模型不变：" + r.reason + "。当前 " + figures(r.before) + "，新 " + figures(r.after);
    box.appendChild(p);
    if (state) say(state, "", false);
  }

  async function poll() {
    const job = await request("GET", "/staff/api/review/retrain");
    if (job.running) {
      setTimeout(poll, 1000);
      return;
    }
    const button = document.getElementById("retrain");
    if (button) button.disabled = false;
    showResult(job);
    if (job.result && job.result.accepted) {
      // The versions table changed: show it, and keep the result under it.
      sessionStorage.setItem("tongxin-retrain", JSON.stringify(job));
      window.location.reload();
    }
  }

  const retrain = document.getElementById("retrain");
  if (retrain) {
    retrain.addEventListener("click", async () => {
      retrain.disabled = true;
      say(document.getElementById("retrain-state"), "训练中……", false);
      try {
        await request("POST", "/staff/api/review/retrain");
        setTimeout(poll, 1000);
      } catch (err) {
        retrain.disabled = false;
        say(document.getElementById("retrain-state"), "没有成功：" + err.message, true);
      }
    });
    if (retrain.disabled) setTimeout(poll, 1000);
  }
  const kept = sessionStorage.getItem("tongxin-retrain");
  if (kept) {
    sessionStorage.removeItem("tongxin-retrain");
    showResult(JSON.parse(kept));
  }

  document.querySelectorAll("button.use-version").forEach((button) => {
    button.addEventListener("click", async () => {
      if (!window.confirm("改用模型 " + button.dataset.version + "？")) return;
      button.disabled = true;
      try {
        await request("POST", "/staff/api/review/models/" + encodeURIComponent(button.dataset.version) + "/use");
        window.location.reload();
      } catch (err) {
        button.disabled = false;
        window.alert("没有成功：" + err.message);
      }
    });
  });
})();
