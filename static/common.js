// Shared by the student and teacher pages: who I am, the Phoenix socket, and
// how chat messages look. Plain ES module, no build step.
//
// Identity: a user id is the user's identity on the server (same id = same
// user), so every page load makes a fresh one, "<name>·<4 base36 chars>", and
// only the name part is ever shown.

import {Socket} from "./vendor/phoenix.mjs"

const ID_SUFFIX = /·[0-9a-z]{4}$/
const MAX_NAME = 40
export const MAX_MESSAGE = 2000

const ADJECTIVES = ["Curious", "Brave", "Calm", "Clever", "Eager", "Gentle", "Happy", "Kind",
  "Lively", "Patient", "Quick", "Quiet", "Sunny", "Swift", "Wise", "Witty"]
const ANIMALS = ["Otter", "Falcon", "Panda", "Lynx", "Heron", "Koala", "Fox", "Owl",
  "Badger", "Dolphin", "Gecko", "Ibis", "Marten", "Puffin", "Robin", "Wombat"]

const pick = (list) => list[Math.floor(Math.random() * list.length)]

export function randomName(){
  return `${pick(ADJECTIVES)} ${pick(ANIMALS)}`
}

/** The name given in `?name=`, tidied, or a random one. */
export function nameFromQuery(){
  const raw = new URLSearchParams(location.search).get("name") || ""
  const name = raw.replace(/\s+/g, " ").trim().slice(0, MAX_NAME)
  return name || randomName()
}

export function makeUserId(name){
  const suffix = Array.from({length: 4}, () => "0123456789abcdefghijklmnopqrstuvwxyz"[Math.floor(Math.random() * 36)]).join("")
  return `${name}·${suffix}`
}

/** The name part of a user id (ids from other clients are shown as they are). */
export function displayName(id){
  return String(id ?? "").replace(ID_SUFFIX, "") || "someone"
}

/**
 * Opens the Phoenix socket (V2 framing, `/socket/websocket?vsn=2.0.0` on this
 * host) and keeps `statusEl` telling whether it is connected.
 */
export function connect(statusEl){
  const socket = new Socket("/socket", {params: {}})
  const show = (state, text) => {
    statusEl.dataset.state = state
    statusEl.textContent = text
  }
  show("connecting", "Connecting…")
  socket.onOpen(() => show("online", "Connected"))
  socket.onError(() => show("offline", "Connection lost, reconnecting…"))
  socket.onClose(() => { if(statusEl.dataset.state !== "offline") show("offline", "Disconnected, reconnecting…") })
  socket.connect()
  // Leaving the page leaves the queue and any chat: close the socket at once
  // rather than when the browser gets round to it. A page restored from the
  // back/forward cache starts over.
  addEventListener("pagehide", () => socket.disconnect())
  addEventListener("pageshow", (event) => { if(event.persisted) location.reload() })
  return socket
}

/** The payload of `teacher:send` / `student:send`. */
export function messagePayload(text, name){
  return {message: text, name, at: new Date().toISOString()}
}

function timeOf(at){
  const date = typeof at === "string" ? new Date(at) : new Date(NaN)
  return isNaN(date) ? new Date() : date
}

/**
 * Appends one chat message to the list `log`. `payload` is what the other
 * side sent (`{message, name, at}`); everything is shown as text, never HTML.
 */
export function appendMessage(log, payload, {own = false, fallbackName = "someone"} = {}){
  const text = typeof payload?.message === "string" ? payload.message : JSON.stringify(payload)
  const name = typeof payload?.name === "string" && payload.name.trim() ? payload.name.slice(0, MAX_NAME) : fallbackName
  const when = timeOf(payload?.at)

  const item = document.createElement("li")
  item.className = own ? "msg own" : "msg"
  const meta = document.createElement("div")
  meta.className = "meta"
  const sender = document.createElement("span")
  sender.className = "sender"
  sender.textContent = own ? `${name} (you)` : name
  const time = document.createElement("time")
  time.dateTime = when.toISOString()
  time.textContent = when.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})
  meta.append(sender, time)
  const body = document.createElement("p")
  body.className = "text"
  body.textContent = text
  item.append(meta, body)
  addToLog(log, item)
}

/** Appends a line such as "Chat started" to the list `log`. */
export function appendNote(log, text){
  const item = document.createElement("li")
  item.className = "msg system"
  item.textContent = text
  addToLog(log, item)
}

function addToLog(log, item){
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40
  log.append(item)
  if(atBottom) log.scrollTop = log.scrollHeight
}

/** Wires a compose form: calls `send(text)` with the trimmed text, then clears it. */
export function onCompose(form, input, send){
  input.maxLength = MAX_MESSAGE
  form.addEventListener("submit", (event) => {
    event.preventDefault()
    const text = input.value.trim()
    if(!text || input.disabled) return
    send(text)
    input.value = ""
    input.focus()
  })
}
