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
function claimsOf(token){
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

/** Wires the header's "Sign out" button: forget the token, back to the start page. */
export function signOutButton(button, me){
  button.hidden = false
  button.addEventListener("click", () => {
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
 */
export function connect(statusEl, me){
  const socket = new Socket("/socket", {params: {token: me.token}})
  const show = (state, text) => {
    statusEl.dataset.state = state
    statusEl.textContent = text
  }
  show("connecting", "Connecting…")
  socket.onOpen(() => show("online", "Connected"))
  let checking = false
  socket.onError(() => {
    show("offline", "Connection lost, reconnecting…")
    if(checking) return
    checking = true
    apiFetch(me, "/api/chats?limit=1", {cache: "no-store"}).catch(() => {}).finally(() => { checking = false })
  })
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
