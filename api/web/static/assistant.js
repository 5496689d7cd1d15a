// The assistant panel (/assistant). A static file, so the page needs no inline script and a
// strict Content-Security-Policy holds.
//
// The chat posts to /api/assistant/messages/stream and reads its server-sent events from the
// fetch body (EventSource cannot POST), so each tool call shows up as it happens. The
// storyboard cards are HTML rendered by the server (/assistant/storyboard/<id>); the
// generation's own event stream (/api/generations/<id>/events) says when to fetch them again.
// Every request rides on the viewer's session cookie (same origin).
"use strict";

(function () {
  const TERMINAL = ["completed", "failed", "cancelled"];
  const BOARD_EVENTS = ["plan_ready", "scene_started", "attempt_started", "scene_done", "run_done", "warning"];
  const UNREACHABLE = "Can't reach the ImageForge server. Check that it is running and that you are online, then try again.";
  const SIGNED_OUT = "You are signed out (or your session expired).";

  const el = (id) => document.getElementById(id);
  const ui = {
    banner: el("banner"),
    messages: el("messages"),
    form: el("composer"),
    input: el("message"),
    send: el("send"),
    list: el("conversation-list"),
    listEmpty: el("conversation-empty"),
    fresh: el("new-conversation"),
    board: el("storyboard"),
    cancel: el("cancel"),
  };
  const state = { conversation: null, generation: null, source: null, timer: null, busy: false };

  // Messages to the user ------------------------------------------------------------------------
  function showBanner(text, kind) {
    ui.banner.textContent = text;
    ui.banner.dataset.kind = kind || "error";
    if (text === SIGNED_OUT) {
      const link = document.createElement("a");
      link.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
      link.textContent = "Sign in again";
      ui.banner.append(" ", link);
    }
    ui.banner.hidden = false;
  }

  function hideBanner(kind) {
    if (!kind || ui.banner.dataset.kind === kind) ui.banner.hidden = true;
  }

  async function describe(response) {
    if (response.status === 401) return SIGNED_OUT;
    let detail = "";
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : (body.detail || []).map((d) => d.msg).join("; ");
    } catch (_) {
      detail = response.statusText;
    }
    return `The server refused that (${response.status}): ${detail || "no reason given"}`;
  }

  async function request(url, options) {
    // Throws an Error whose message is fit to show; hides the "unreachable" banner on success.
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", ...options });
    } catch (_) {
      showBanner(UNREACHABLE, "offline");
      throw new Error(UNREACHABLE);
    }
    hideBanner("offline");
    if (!response.ok) {
      const reason = await describe(response);
      if (response.status === 401) showBanner(reason, "auth");
      throw new Error(reason);
    }
    return response;
  }

  function scrollDown() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function addMessage(role, text) {
    const item = document.createElement("li");
    item.className = `message ${role}`;
    item.textContent = text;
    ui.messages.appendChild(item);
    scrollDown();
    return item;
  }

  function describeArgs(args) {
    const parts = Object.entries(args || {})
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([key, value]) => `${key}=${typeof value === "string" ? JSON.stringify(value) : String(value)}`);
    return parts.join(", ");
  }

  function addToolCall(call) {
    const item = document.createElement("li");
    item.className = "message tool running";
    item.dataset.callId = call.id || "";
    item.dataset.tool = call.name;
    const head = document.createElement("div");
    head.className = "tool-head";
    const name = document.createElement("span");
    name.className = "tool-name";
    name.textContent = call.name;
    const args = document.createElement("span");
    args.className = "tool-args";
    args.textContent = `(${describeArgs(call.args)})`;
    const status = document.createElement("span");
    status.className = "tool-status";
    status.textContent = "running…";
    head.append(name, args, status);
    const body = document.createElement("div");
    body.className = "tool-body";
    item.append(head, body);
    ui.messages.appendChild(item);
    scrollDown();
    return item;
  }

  function finishToolCall(result) {
    const steps = Array.from(ui.messages.querySelectorAll("li.tool.running"));
    let item = steps.find((step) => result.id && step.dataset.callId === result.id);
    item = item || steps.find((step) => step.dataset.tool === result.name);
    if (!item) item = addToolCall({ name: result.name || "tool", args: {} });
    const refused = result.status === "error";
    item.classList.remove("running");
    item.classList.add(refused ? "refused" : "done");
    item.querySelector(".tool-status").textContent = refused ? "refused" : "done";
    item.querySelector(".tool-body").textContent = result.content || "";
    scrollDown();
  }

  function foldRepeated(steps, reply) {
    // Offline, the reply is the tools' own words: say them once, in the reply.
    for (const step of steps) {
      const body = step.querySelector(".tool-body");
      if (body.textContent && reply.includes(body.textContent)) body.hidden = true;
    }
  }

  // Server-sent events from a fetch body ------------------------------------------------------
  function dispatch(block, onEvent) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) onEvent(name, JSON.parse(data.join("\n")));
  }

  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let carry = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      let text = carry + decoder.decode(value, { stream: true });
      carry = text.endsWith("\r") ? "\r" : ""; // a CRLF split across two chunks
      if (carry) text = text.slice(0, -1);
      buffer += text.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, end), onEvent);
        buffer = buffer.slice(end + 2);
      }
    }
    if (buffer.trim()) dispatch(buffer, onEvent);
  }

  // Chat --------------------------------------------------------------------------------------
  function setBusy(busy) {
    state.busy = busy;
    ui.send.disabled = busy;
    ui.messages.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function remember(conversationId) {
    state.conversation = conversationId;
    const url = conversationId ? `/assistant?conversation=${encodeURIComponent(conversationId)}` : "/assistant";
    history.replaceState(null, "", url);
    for (const button of ui.list.querySelectorAll("button")) {
      button.setAttribute("aria-current", button.dataset.id === conversationId ? "true" : "false");
    }
  }

  async function sendMessage(text) {
    setBusy(true);
    addMessage("user", text);
    const thinking = addMessage("assistant pending", "Thinking…");
    const body = { message: text };
    if (state.conversation) body.conversation_id = state.conversation;
    let finished = false;
    let live = null; // the reply being written, from reply_delta events
    const steps = [];
    try {
      const response = await request("/api/assistant/messages/stream", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify(body),
      });
      await readEvents(response, (name, data) => {
        if (name === "conversation") {
          remember(data.conversation_id);
        } else if (name === "reply_delta") {
          if (!live) {
            live = addMessage("assistant", "");
            ui.messages.insertBefore(live, thinking);
          }
          live.textContent += data.content || "";
          scrollDown();
        } else if (name === "tool_call") {
          live = null; // what the model wrote before calling a tool stays as it was
          const step = addToolCall(data);
          steps.push(step);
          ui.messages.insertBefore(step, thinking);
        } else if (name === "tool_result") {
          finishToolCall(data);
          if (data.action && data.action.generation_id) showStoryboard(data.action.generation_id);
        } else if (name === "reply") {
          // The finished reply is the authority: it replaces the text streamed so far.
          const reply = live || addMessage("assistant", "");
          reply.textContent = data.content || "";
          live = null;
          ui.messages.insertBefore(reply, thinking);
          foldRepeated(steps, data.content || "");
        } else if (name === "done") {
          finished = true;
          if (data.generation_id) showStoryboard(data.generation_id);
        }
      });
      if (!finished) addMessage("error", "The reply was cut off: the connection closed before the assistant finished. Ask \"how is it going?\" to see where things stand.");
    } catch (error) {
      addMessage("error", error.message === UNREACHABLE ? UNREACHABLE : error.message);
    } finally {
      thinking.remove();
      setBusy(false);
      loadConversations();
      ui.input.focus();
    }
  }

  // Storyboard --------------------------------------------------------------------------------
  function stopFollowing() {
    if (state.source) state.source.close();
    state.source = null;
    clearTimeout(state.timer);
    state.timer = null;
  }

  function clearStoryboard() {
    stopFollowing();
    state.generation = null;
    ui.cancel.hidden = true;
    ui.board.replaceChildren();
    const empty = document.createElement("p");
    empty.className = "muted empty";
    empty.textContent = "No storyboard in this conversation yet.";
    ui.board.appendChild(empty);
  }

  async function refreshBoard() {
    state.timer = null;
    const id = state.generation;
    if (!id) return;
    let html;
    try {
      const response = await request(`/assistant/storyboard/${encodeURIComponent(id)}`);
      html = await response.text();
    } catch (error) {
      if (id === state.generation) showBanner(error.message, "board");
      return;
    }
    if (id !== state.generation) return; // another storyboard took its place meanwhile
    hideBanner("board");
    ui.board.innerHTML = html; // the server's template escapes every value
    const board = el("board");
    const live = board && board.dataset.live === "true";
    ui.cancel.hidden = !live;
    if (!live) stopFollowing();
  }

  function schedule() {
    if (!state.timer) state.timer = setTimeout(refreshBoard, 250);
  }

  function follow(id) {
    if (!window.EventSource) return;
    const source = new EventSource(`/api/generations/${encodeURIComponent(id)}/events`);
    state.source = source;
    const finish = (event) => {
      let status = null;
      try {
        status = JSON.parse(event.data).status;
      } catch (_) {
        // a malformed event still triggers a refresh
      }
      if (TERMINAL.includes(status)) {
        source.close(); // the server ends the stream here; do not let EventSource reconnect
        if (state.source === source) state.source = null;
      }
      schedule();
    };
    source.addEventListener("state", finish);
    source.addEventListener("status", finish);
    BOARD_EVENTS.forEach((name) => source.addEventListener(name, schedule));
    source.addEventListener("open", () => hideBanner("live"));
    source.onerror = () => {
      if (state.source !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        showBanner("Live updates of the storyboard stopped. Reload the page to follow it again.", "live");
      } else {
        showBanner("Lost the connection to the server; trying to reconnect…", "live");
      }
    };
  }

  function showStoryboard(id) {
    if (id === state.generation) {
      schedule();
      return;
    }
    stopFollowing();
    state.generation = id;
    refreshBoard().then(() => {
      if (state.generation === id && !ui.cancel.hidden) follow(id);
    });
  }

  async function cancelStoryboard() {
    if (!state.conversation) return;
    ui.cancel.disabled = true;
    try {
      const response = await request(
        `/api/assistant/conversations/${encodeURIComponent(state.conversation)}/cancel`,
        { method: "POST" },
      );
      const outcome = await response.json();
      addMessage("note", `Cancel storyboard ${outcome.generation_id}: ${outcome.message}.`);
      schedule();
    } catch (error) {
      addMessage("error", error.message);
    } finally {
      ui.cancel.disabled = false;
    }
  }

  // Conversations -----------------------------------------------------------------------------
  async function loadConversations() {
    let page;
    try {
      page = await (await request("/api/assistant/conversations?limit=50")).json();
    } catch (error) {
      if (error.message !== UNREACHABLE) showBanner(error.message, "list");
      return;
    }
    hideBanner("list");
    ui.list.replaceChildren();
    for (const conversation of page.data) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "conversation";
      button.dataset.id = conversation.id;
      button.textContent = conversation.title || conversation.id;
      button.title = `Started ${new Date(conversation.created_at).toLocaleString()}`;
      button.setAttribute("aria-current", conversation.id === state.conversation ? "true" : "false");
      item.appendChild(button);
      ui.list.appendChild(item);
    }
    ui.listEmpty.hidden = page.data.length > 0;
  }

  function resetChat() {
    ui.messages.replaceChildren();
  }

  async function openConversation(id) {
    let detail;
    try {
      detail = await (await request(`/api/assistant/conversations/${encodeURIComponent(id)}`)).json();
    } catch (error) {
      showBanner(error.message, "conversation");
      return;
    }
    hideBanner("conversation");
    resetChat();
    remember(detail.id);
    let steps = [];
    for (const message of detail.messages) {
      if (message.role === "user") {
        addMessage("user", message.content);
        steps = [];
      } else if (message.role === "tool") {
        finishToolCall({ name: message.name, content: message.content, status: "success" });
      } else {
        for (const call of message.tool_calls || []) steps.push(addToolCall(call));
        if (message.content) {
          addMessage("assistant", message.content);
          foldRepeated(steps, message.content);
        }
      }
    }
    // Tool steps of an interrupted turn have no result; they are not running any more.
    for (const step of ui.messages.querySelectorAll("li.tool.running")) {
      step.classList.remove("running");
      step.querySelector(".tool-status").textContent = "no result";
    }
    if (detail.generation_id) showStoryboard(detail.generation_id);
    else clearStoryboard();
  }

  function newConversation() {
    resetChat();
    addMessage("assistant intro", "New conversation. Ask me to start a storyboard.");
    remember(null);
    clearStoryboard();
    ui.input.focus();
  }

  // Wiring --------------------------------------------------------------------------------------
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text || state.busy) return;
    ui.input.value = "";
    sendMessage(text);
  });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.form.requestSubmit();
    }
  });
  for (const example of document.querySelectorAll("button.example")) {
    example.addEventListener("click", () => {
      ui.input.value = example.dataset.example;
      ui.input.focus();
    });
  }
  ui.list.addEventListener("click", (event) => {
    const button = event.target.closest("button.conversation");
    if (button && !state.busy) openConversation(button.dataset.id);
  });
  ui.fresh.addEventListener("click", newConversation);
  ui.cancel.addEventListener("click", cancelStoryboard);
  window.addEventListener("offline", () => showBanner(UNREACHABLE, "offline"));
  window.addEventListener("online", () => hideBanner("offline"));

  // On a phone the conversation list starts folded, so the chat is on the first screen.
  if (window.matchMedia("(max-width: 700px)").matches) el("conversations").open = false;

  const wanted = new URLSearchParams(location.search).get("conversation");
  loadConversations();
  if (wanted) openConversation(wanted);
})();
