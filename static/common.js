// Shared by the student and teacher pages: who I am (a signed token), the
// Phoenix socket, and how chat messages look. Plain ES module, no build step.
//
// Identity: the page signs in once and keeps the token in localStorage, one
// per role ("tutor-queue.token.student" / ".teacher"), so a reload is the
// same person. A token comes from the URL fragment (#token=…, minted by an
// organisation; stored, then removed from the address bar), else from
// localStorage, else from guest sign-in (POST /api/session with the name of
// ?name= or a random one). A stored token is dropped when it has (nearly)
// expired, when ?name= names someone else, when the server answers 401, and
// on "Sign out". The token's `sub` is the user id every join names; guest ids
// are "<name>·<32 hex digits>" and only the name part is ever shown.

import {Socket} from "./vendor/phoenix.mjs"

const ID_SUFFIX = /·(?:[0-9a-z]{4}|[0-9a-f]{32})$/
const TOKEN_KEY = (role) => `tutor-queue.token.${role}`
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

/** The name part of a user id (ids from other clients are shown as they are). */
export function displayName(id){
  return String(id ?? "").replace(ID_SUFFIX, "") || "someone"
}

/** The claims of a token (not verified: the server does that), or null. */
export function claimsOf(token){
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")
    const json = decodeURIComponent(Array.from(atob(part), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""))
    const claims = JSON.parse(json)
    return typeof claims?.sub === "string" && typeof claims?.name === "string" ? claims : null
  } catch { return null }
}

function storage(){
  try { return window.localStorage } catch { return null }
}

/** Forgets the token of `role` (sign out, or the server refused it). */
export function forgetToken(role){
  storage()?.removeItem(TOKEN_KEY(role))
}

/** A token handed in the URL fragment (#token=…): stored under its role, then removed from the address bar. */
function takeTokenFromFragment(){
  const params = new URLSearchParams(location.hash.slice(1))
  const token = params.get("token")
  if(!token) return
  history.replaceState(null, "", location.pathname + location.search)
  const claims = claimsOf(token)
  if(claims && typeof claims.role === "string") storage()?.setItem(TOKEN_KEY(claims.role), token)
}

/** Why signing in failed: shown to the user. */
export class SignInError extends Error {}

/**
 * Who this page is, as `{token, id, name, role}`: the token of `role` from the
 * fragment or localStorage, else a guest token from POST /api/session.
 */
export async function signIn(role){
  takeTokenFromFragment()
  const asked = (new URLSearchParams(location.search).get("name") || "").replace(/\s+/g, " ").trim().slice(0, MAX_NAME)
  const stored = storage()?.getItem(TOKEN_KEY(role))
  const claims = stored ? claimsOf(stored) : null
  const fresh = claims && claims.role === role && (typeof claims.exp !== "number" || claims.exp * 1000 > Date.now() + 60000)
  if(fresh && (!asked || asked === claims.name)) return {token: stored, id: claims.sub, name: claims.name, role}
  forgetToken(role)
  let response
  try {
    response = await fetch("/api/session", {
      method: "POST",
      headers: {"content-type": "application/json", accept: "application/json"},
      body: JSON.stringify({name: asked || randomName(), role}),
    })
  } catch {
    throw new SignInError("Could not reach the server to sign in. Reload the page to try again.")
  }
  const body = await response.json().catch(() => null)
  if(!response.ok || typeof body?.token !== "string" || typeof body?.user?.id !== "string"){
    const why = typeof body?.error === "string" ? body.error : `the server answered ${response.status}`
    throw new SignInError(response.status === 403
      ? `Guest sign-in is closed here (${why}). Sign in through your organisation.`
      : `Could not sign in: ${why}.`)
  }
  storage()?.setItem(TOKEN_KEY(role), body.token)
  return {token: body.token, id: body.user.id, name: body.user.name, role}
}

/**
 * The server refused `me`'s token (401): forget it and load the page again,
 * which signs in afresh (once: a page that was just signed in says so instead).
 */
export function tokenRefused(me){
  forgetToken(me.role)
  if(sessionStorage.getItem("tutor-queue.resigned") === me.token) return
  sessionStorage.setItem("tutor-queue.resigned", me.token)
  location.reload()
}

/** `fetch` of a JSON API path with `me`'s token; a 401 signs in again. */
export async function apiFetch(me, url, options = {}){
  const headers = {accept: "application/json", authorization: `Bearer ${me.token}`, ...(options.headers || {})}
  const response = await fetch(url, {...options, headers})
  if(response.status === 401) tokenRefused(me)
  return response
}

/**
 * Wires the header's "Sign out" button: `leave()` (the page leaves its
 * presence topic: a deliberate leave, so the server does not keep its place),
 * forget the token, back to the start page.
 */
export function signOutButton(button, me, leave = () => {}){
  button.hidden = false
  button.addEventListener("click", () => {
    try { leave() } catch {}
    forgetToken(me.role)
    location.assign("/")
  })
}

/** Shows why the page could not sign in, in place of the page. */
export function showSignInProblem(statusEl, error){
  statusEl.dataset.state = "offline"
  statusEl.textContent = "Not signed in"
  const main = document.getElementById("main")
  const note = document.createElement("p")
  note.className = "notice"
  note.id = "sign-in-problem"
  note.setAttribute("role", "alert")
  note.textContent = error instanceof SignInError ? error.message : `Could not sign in: ${error}`
  main.replaceChildren(note)
}

/**
 * Opens the Phoenix socket (V2 framing, `/socket/websocket?vsn=2.0.0&token=…`
 * on this host) as `me` and keeps `statusEl` telling whether it is connected.
 * The socket cannot see an HTTP 401 at the upgrade, so when it fails to
 * connect the token is checked against the API, and a refused one is dropped.
 *
 * Answers a `link`: `{socket, up, droppedAt, graceMs, keptUntil(), onDown(f),
 * onUp(f), describe}`. phoenix.js reconnects by itself (backoff up to 5 s, at
 * once when the browser says it is online again) and rejoins the channels the
 * page keeps. While the connection is down the banner `#reconnecting` says so;
 * its second line is `link.describe()`, set by the page (e.g. "Your place is
 * kept until 14:05."). `graceMs` is the server's grace window (PROTOCOL 6.3,
 * from `GET /api/session`: `undefined` until known, `null` if the server does
 * not say), `droppedAt` the moment this page saw the connection go.
 */
export function connect(statusEl, me){
  // Heartbeats every 15 s: a connection that died without a word (Wi-Fi gone)
  // is noticed within about 30 s rather than a minute.
  const socket = new Socket("/socket", {params: {token: me.token}, heartbeatIntervalMs: 15000})
  const banner = document.getElementById("reconnecting")
  const link = {
    socket, up: false, droppedAt: null, graceMs: undefined, describe: () => "",
    downHooks: [], upHooks: [],
    onDown(f){ this.downHooks.push(f) },
    onUp(f){ this.upHooks.push(f) },
    /** When a place or a chat kept for this page ends (unix ms), or null if not known. */
    keptUntil(){
      return this.droppedAt !== null && Number.isFinite(this.graceMs) ? this.droppedAt + this.graceMs : null
    },
  }
  const show = (state, text) => {
    statusEl.dataset.state = state
    statusEl.textContent = text
  }
  let ticker = null
  const renderBanner = () => {
    if(!banner) return
    banner.hidden = link.up || link.droppedAt === null
    const detail = banner.querySelector(".banner-detail")
    if(detail) detail.textContent = banner.hidden ? "" : link.describe()
  }
  link.renderBanner = renderBanner
  const learnGrace = () => {
    apiFetch(me, "/api/session", {cache: "no-store"})
      .then((response) => response.ok ? response.json() : null)
      .then((body) => {
        link.graceMs = Number.isFinite(body?.reconnect_grace_ms) ? body.reconnect_grace_ms : null
        renderBanner()
      })
      .catch(() => {})
  }
  const lost = (text) => {
    show("offline", text)
    if(!link.up) return
    link.up = false
    link.droppedAt = Date.now()
    for(const hook of link.downHooks) hook()
    renderBanner()
    // "kept until" turns into "may be lost" when the time passes.
    ticker ??= setInterval(renderBanner, 5000)
  }
  show("connecting", "Connecting…")
  socket.onOpen(() => {
    show("online", "Connected")
    const wasDown = link.droppedAt !== null
    link.up = true
    clearInterval(ticker)
    ticker = null
    for(const hook of link.upHooks) hook(wasDown)
    link.droppedAt = null
    renderBanner()
    learnGrace()
  })
  let checking = false
  socket.onError(() => {
    lost("Connection lost, reconnecting…")
    if(checking || navigator.onLine === false) return
    checking = true
    apiFetch(me, "/api/chats?limit=1", {cache: "no-store"}).catch(() => {}).finally(() => { checking = false })
  })
  socket.onClose(() => lost(statusEl.dataset.state === "offline" ? statusEl.textContent : "Disconnected, reconnecting…"))
  // Back online: try now rather than when the backoff timer says (the same
  // thing phoenix.js does when a hidden page becomes visible again).
  addEventListener("online", () => {
    if(!socket.isConnected() && typeof socket.handleVisibilityChange === "function") socket.handleVisibilityChange()
  })
  socket.connect()
  // Leaving the page closes the socket at once rather than when the browser
  // gets round to it. The server keeps this user's place for its grace window
  // (a reload comes straight back). A page restored from the back/forward
  // cache starts over.
  addEventListener("pagehide", () => socket.disconnect())
  addEventListener("pageshow", (event) => { if(event.persisted) location.reload() })
  return link
}

/** "14:05": the hour and minute of unix ms `ms`. */
export function clock(ms){
  return new Date(ms).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})
}

/**
 * What the banner says about something kept for this page while it is away
 * (`what`: "Your place in line", "Your chat"): until when, or that the time
 * is up, or that the server keeps nothing.
 */
export function keptText(link, what){
  const until = link.keptUntil()
  if(link.graceMs === 0) return `${what} is not kept while you are disconnected.`
  if(until === null) return `${what} is kept for a while.`
  if(Date.now() > until) return `${what} was kept until ${clock(until)}: it may be lost by now.`
  return `${what} is kept until ${clock(until)}.`
}

/** A random id for one message (`payload.id`), to find it in the transcript later. */
export function messageId(){
  const bytes = new Uint8Array(16)
  crypto.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
}

/** The payload of `teacher:send` / `student:send`. */
export function messagePayload(text, name){
  return {message: text, name, at: new Date().toISOString(), id: messageId()}
}

function timeOf(at){
  const date = typeof at === "string" ? new Date(at) : new Date(NaN)
  return isNaN(date) ? new Date() : date
}

/**
 * Appends one chat message to the list `log`. `payload` is what the other
 * side sent (`{message, name, at}`); everything is shown as text, never HTML.
 */
export function appendMessage(log, payload, {own = false, fallbackName = "someone", at = null, delivery = null} = {}){
  const text = typeof payload?.message === "string" ? payload.message : JSON.stringify(payload)
  const name = typeof payload?.name === "string" && payload.name.trim() ? payload.name.slice(0, MAX_NAME) : fallbackName
  const when = typeof payload?.at !== "string" && Number.isFinite(at) ? new Date(at) : timeOf(payload?.at)

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
  const body = document.createElement("div")
  body.className = "text"
  renderText(body, text)
  item.append(meta, body)
  if(delivery) setDelivery(item, delivery)
  addToLog(log, item)
  return item
}

const DELIVERY = {
  sending: "Sending…",
  pending: "Not sent yet: it is sent when you are back online.",
  unknown: "Not confirmed: it may not have been delivered.",
}

/**
 * Marks one own message (an item of `appendMessage`): `"sending"` (sent, not
 * yet confirmed), `"pending"` (not sent: no connection), `"sent"`, or
 * `{failed: reason}` (not delivered; `retry` adds a "Send again" button).
 * Only a confirmed message looks like a plain sent one.
 */
export function setDelivery(item, state, retry = null){
  item.querySelector(".delivery")?.remove()
  const failed = typeof state === "object" && state !== null
  item.dataset.delivery = failed ? "failed" : state
  if(state === "sent") return
  const note = document.createElement("p")
  note.className = "delivery"
  note.textContent = failed ? `Not delivered: ${state.failed}` : DELIVERY[state] ?? ""
  if(retry){
    const again = document.createElement("button")
    again.type = "button"
    again.className = "secondary again"
    again.textContent = "Send again"
    again.addEventListener("click", retry)
    note.append(" ", again)
  }
  item.append(note)
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

const FENCE = /^\s*```/
const INDENTED = /^( {4}|\t)/

/**
 * Shows message `text` in `el` as text, never HTML: line breaks kept (the
 * stylesheet says `white-space: pre-wrap`), and code in monospace: the lines
 * between ``` fences (the fence lines themselves are not shown; an unclosed
 * fence runs to the end) and runs of lines that start with four spaces or a
 * tab, each as a `<pre class="code">` block.
 */
export function renderText(el, text){
  el.replaceChildren()
  let prose = []
  let code = null          // lines of the block being read
  let fenced = false
  const flushProse = () => {
    if(prose.length) el.append(document.createTextNode(prose.join("\n")))
    prose = []
  }
  const flushCode = () => {
    if(code === null) return
    const pre = document.createElement("pre")
    pre.className = "code"
    const inner = document.createElement("code")
    inner.textContent = code.join("\n")
    pre.append(inner)
    el.append(pre)
    code = null
  }
  for(const line of String(text).split("\n")){
    if(FENCE.test(line)){
      if(fenced){ flushCode(); fenced = false }
      else { flushProse(); flushCode(); code = []; fenced = true }
    } else if(fenced){
      code.push(line)
    } else if(INDENTED.test(line)){
      flushProse()
      code ??= []
      code.push(line)
    } else {
      flushCode()
      prose.push(line)
    }
  }
  flushCode()
  flushProse()
}
