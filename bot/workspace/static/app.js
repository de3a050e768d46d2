// 同心 staff workspace: JSON calls with the CSRF header, and the live
// conversation on a ticket page (polling). No outside scripts.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  function toast(text) {
    const el = document.createElement("div");
    el.className = "toast";
    el.setAttribute("role", "status");
    el.textContent = text;
    document.body.appendChild(el);
    setTimeout(() => el.remove(), 3000);
  }

  async function call(url, body) {
    const res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error || res.statusText);
    return data;
  }

  document.querySelectorAll("form.api").forEach((form) => {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {};
      new FormData(form).forEach((v, k) => { body[k] = v; });
      if ("internal" in body) body.internal = body.internal === "true";
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        await call(form.dataset.api, body);
        window.location.reload();
      } catch (err) {
        toast("没有成功：" + err.message);
        button.disabled = false;
      }
    });
  });

  document.querySelectorAll("button.contact").forEach((button) => {
    button.addEventListener("click", async () => {
      try {
        await call(button.dataset.api);
        window.location.reload();
      } catch (err) { toast("没有成功：" + err.message); }
    });
  });

  const chat = document.getElementById("chat");
  if (!chat) return;
  const list = document.getElementById("transcript");
  const state = document.getElementById("takeover-state");
  const take = document.getElementById("takeover");
  const back = document.getElementById("handback");
  const me = chat.dataset.me;
  const who = { resident: "居民", bot: "同心", staff: "工作人员" };

  function lastId() {
    const items = list.querySelectorAll("li[data-id]");
    return items.length ? items[items.length - 1].dataset.id : "0";
  }

  function showHolder(holder) {
    chat.dataset.holder = holder || "";
    state.textContent = holder ? holder + " 正在人工接管" : "由智能助手回复";
    if (take) take.disabled = !!holder;
    if (back) back.disabled = !holder || holder !== me;
  }

  function add(m) {
    const empty = list.querySelector("li.empty");
    if (empty) empty.remove();
    const li = document.createElement("li");
    li.className = "msg from-" + m.from;
    li.dataset.id = m.id;
    const w = document.createElement("span"); w.className = "who"; w.textContent = who[m.from] || m.from;
    const t = document.createElement("span"); t.className = "text"; t.textContent = m.text;
    const when = document.createElement("span"); when.className = "when";
    when.textContent = m.at_local;
    li.append(w, t, when);
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  async function poll() {
    try {
      const url = "/staff/api/tickets/" + encodeURIComponent(chat.dataset.ticket) + "/conversation?after=" + lastId();
      const res = await fetch(url, { credentials: "same-origin" });
      if (res.ok) {
        const data = await res.json();
        data.messages.forEach(add);
        showHolder(data.takeover ? data.takeover.staff : "");
      }
    } catch (err) { /* the next poll tries again */ }
  }

  [take, back].forEach((button) => {
    if (!button) return;
    button.addEventListener("click", async () => {
      try {
        const data = await call(button.dataset.api);
        showHolder(data.takeover ? data.takeover.staff : "");
        poll();
      } catch (err) { toast("没有成功：" + err.message); }
    });
  });

  const messageForm = document.getElementById("message-form");
  showHolder(chat.dataset.holder);
  list.scrollTop = list.scrollHeight;
  // While a person holds the conversation, replies go out without reloading.
  if (messageForm) {
    messageForm.addEventListener("submit", (ev) => {
      if (chat.dataset.holder !== me) return;
      const body = { text: messageForm.elements.text.value, internal: messageForm.elements.internal.value === "true" };
      if (body.internal) return;
      ev.preventDefault();
      ev.stopImmediatePropagation();
      call(messageForm.dataset.api, body).then(() => { messageForm.elements.text.value = ""; poll(); })
        .catch((err) => toast("没有成功：" + err.message));
    }, true);
  }
  setInterval(poll, 1500);
})();

// The monthly report's print button (no inline handlers: the page's CSP forbids them).
document.querySelectorAll("button[data-print]").forEach((button) => {
  button.addEventListener("click", () => window.print());
});
