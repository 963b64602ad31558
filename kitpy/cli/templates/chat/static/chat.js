// The chat page: pick a name, pick a room, chat. Plain JavaScript, no build step.
//
// Wire protocol (the one of Cloudflare's workers-chat-demo):
//   POST /api/room                       -> 64-hex id of a new private room
//   GET  /api/room/<room>/websocket      -> WebSocket; send {"name"} first, then
//                                           {"message"}; receive {"joined"}, {"quit"},
//                                           {"ready"}, {"error"} and
//                                           {"name", "message", "timestamp"}.
"use strict";

(() => {
  const MAX_NAME = 32;
  const PRIVATE_ROOM = /^[0-9a-f]{64}$/;
  const NAME_KEY = "kitpy-chat-name";
  // Reconnect backoff: 0.5 s doubling up to 10 s, with jitter. A server restart
  // (close 1012, as `kitpy dev` sends on reload) or shutdown (1001) is retried at once.
  const BACKOFF_START_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const RESTART_CODES = new Set([1001, 1012]);

  const $ = (selector) => document.querySelector(selector);
  const nameForm = $("#name-form");
  const nameInput = $("#name-input");
  const roomForm = $("#room-form");
  const roomInput = $("#room-name");
  const goPrivate = $("#go-private");
  const chatroom = $("#chatroom");
  const roomTitle = $("#room-title");
  const status = $("#status");
  const chatlog = $("#chatlog");
  const roster = $("#roster");
  const chatForm = $("#chat-form");
  const chatInput = $("#chat-input");
  const sendButton = $("#send");

  let username = "";
  let room = "";
  let socket = null; // the socket that has seen {"ready": true}, if any
  let attempt = 0;
  let lastSeenTimestamp = 0; // history is re-sent on reconnect: show each message once
  let welcomed = false;

  function storedName() {
    try {
      return localStorage.getItem(NAME_KEY) || "";
    } catch {
      return "";
    }
  }

  function storeName(name) {
    try {
      localStorage.setItem(NAME_KEY, name);
    } catch {
      // private mode: the name is simply asked again next time
    }
  }

  // Room names are normalised as the original client does.
  function normalise(name) {
    return name.replace(/[^a-zA-Z0-9_-]/g, "").replace(/_/g, "-").toLowerCase();
  }

  function show(element) {
    for (const panel of [nameForm, roomForm, chatroom]) {
      panel.hidden = panel !== element;
    }
  }

  // -- choosing a name and a room ---------------------------------------------------

  function chooseName() {
    show(nameForm);
    nameInput.value = storedName();
    nameInput.focus();
  }

  nameForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = nameInput.value.trim().slice(0, MAX_NAME);
    if (!name) return;
    username = name;
    storeName(name);
    const fromHash = location.hash.slice(1);
    if (fromHash) startChat(fromHash);
    else chooseRoom();
  });

  function chooseRoom() {
    show(roomForm);
    roomInput.focus();
  }

  roomForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = normalise(roomInput.value);
    if (name) startChat(name);
  });

  goPrivate.addEventListener("click", async () => {
    goPrivate.disabled = true;
    try {
      const response = await fetch("/api/room", { method: "POST" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      startChat(await response.text());
    } catch (error) {
      goPrivate.disabled = false;
      alert("Could not create a room: " + error.message);
    }
  });

  // -- the chat ---------------------------------------------------------------------

  function startChat(name) {
    room = normalise(name);
    show(chatroom);
    if (room.length > MAX_NAME && !PRIVATE_ROOM.test(room)) {
      roomTitle.textContent = "?";
      addSystem("Invalid room name.", "error");
      setStatus("not connected");
      return;
    }
    // replaceState does not fire "hashchange", which reloads on a hand-edited hash.
    history.replaceState(null, "", "#" + room);
    roomTitle.textContent = PRIVATE_ROOM.test(room) ? "Private room" : "#" + room;
    setConnected(false);
    chatInput.focus();
    connect();
  }

  function socketUrl() {
    const url = new URL("/api/room/" + encodeURIComponent(room) + "/websocket", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  function connect() {
    setStatus(attempt ? "reconnecting…" : "connecting…");
    const ws = new WebSocket(socketUrl());
    let done = false;

    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ name: username }));
    });

    ws.addEventListener("message", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      receive(ws, data);
    });

    const lost = (event) => {
      if (done) return;
      done = true;
      socket = null;
      setConnected(false);
      roster.replaceChildren();
      const code = event && event.code;
      if (code === 1009) {
        setStatus("disconnected");
        addSystem("Disconnected: " + (event.reason || "message too big") + ".", "error");
        return; // retrying would be refused the same way
      }
      let delay;
      if (RESTART_CODES.has(code) && attempt === 0) {
        delay = 50 + Math.random() * 250;
      } else {
        const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** attempt);
        delay = ceiling / 2 + Math.random() * (ceiling / 2);
      }
      attempt += 1;
      setStatus("reconnecting in " + Math.ceil(delay / 1000) + " s…");
      setTimeout(connect, delay);
    };
    ws.addEventListener("close", lost);
    ws.addEventListener("error", () => {
      // A "close" event always follows; closing here makes sure of it.
      ws.close();
    });
  }

  function receive(ws, data) {
    if (data.error) {
      addSystem("Error: " + data.error, "error");
    } else if (data.joined) {
      const item = document.createElement("li");
      item.textContent = data.joined;
      roster.append(item);
    } else if (data.quit) {
      for (const item of roster.children) {
        if (item.textContent === data.quit) {
          item.remove();
          break;
        }
      }
    } else if (data.ready) {
      socket = ws;
      attempt = 0;
      setConnected(true);
      if (!welcomed) {
        welcomed = true;
        if (PRIVATE_ROOM.test(room)) {
          addSystem("This is a private room: send this page's address to invite someone.");
        } else {
          addSystem("Welcome to #" + room + ". Say hi!");
        }
        addSystem("Names are not authenticated, and the history is saved.");
      }
    } else if (typeof data.timestamp === "number" && data.timestamp > lastSeenTimestamp) {
      lastSeenTimestamp = data.timestamp;
      addMessage(data.name, data.message, data.timestamp);
    }
  }

  chatForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const message = chatInput.value;
    if (!socket || !message) return;
    socket.send(JSON.stringify({ message }));
    chatInput.value = "";
    chatlog.scrollTop = chatlog.scrollHeight;
  });

  // -- rendering ----------------------------------------------------------------------

  function setStatus(text) {
    status.textContent = text;
    status.classList.toggle("online", text === "online");
  }

  function setConnected(connected) {
    sendButton.disabled = !connected;
    if (connected) setStatus("online");
  }

  function atBottom() {
    return chatlog.scrollTop + chatlog.clientHeight >= chatlog.scrollHeight - 4;
  }

  function append(line) {
    const stick = atBottom();
    chatlog.append(line);
    if (stick) chatlog.scrollTop = chatlog.scrollHeight;
  }

  function addMessage(name, message, timestamp) {
    const line = document.createElement("p");
    line.className = "message";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = name;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message;
    const when = new Date(timestamp);
    const time = document.createElement("time");
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    line.append(who, text, time);
    append(line);
  }

  function addSystem(text, kind) {
    const line = document.createElement("p");
    line.className = kind ? "system " + kind : "system";
    line.textContent = text;
    append(line);
  }

  // A hand-edited hash means another room: start over.
  window.addEventListener("hashchange", () => location.reload());

  // -- start --------------------------------------------------------------------------

  username = storedName();
  if (username && location.hash.length > 1) startChat(location.hash.slice(1));
  else chooseName();
})();
