// The teacher page: live counts (from `user:status`), a "Take next student"
// button, and one pane per chat (at most five active), each with its own
// input and "End chat" button. A pane says when its chat ended and why, e.g.
// that the student left; "Close" then removes it. Below them, "Past chats"
// (past-chats.js) lists this teacher's finished chats and their transcripts.

import {appendMessage, appendNote, connect, displayName, messagePayload, onCompose, showSignInProblem, signIn, signOutButton} from "./common.js"
import {pastChats} from "./past-chats.js"

const MAX_CHATS = 5

const $ = (id) => document.getElementById(id)
// Who this page is: a stored token, one from #token=, or a guest sign-in.
// Without one the page says why and goes no further.
const session = await signIn("teacher").catch((error) => {
  showSignInProblem($("connection"), error)
  return null
})
if(!session) await new Promise(() => {})
const name = session.name
const me = session.id
$("me").textContent = name
signOutButton($("sign-out"), session)
document.title = `${name} (teacher) · tutor-queue`

const socket = connect($("connection"), session)
const panes = $("panes")
const take = $("take")

let joined = false
let joinedBefore = false
let claiming = false
let counts = null          // last user:status payload
let claimNote = ""         // e.g. "Nobody was waiting", until the counts change
const chats = new Map()    // chat id → {channel, pane, partner, active, leaving}
const endReasons = new Map() // chat id → the `chat:terminated` reason seen here

// The store has committed a chat before `chat:terminated` is sent, so a
// refresh then lists it.
const past = pastChats({me: session, teacherName: name, reasonOf: (id) => endReasons.get(id)})

const activeChats = () => [...chats.values()].filter((c) => c.active).length

// ------------------------------------------------------------------ counts and the take button
function renderCounts(){
  const known = (v) => (Number.isInteger(v) ? String(v) : "…")
  $("count-teachers").textContent = known(counts?.teachers?.total)
  $("count-waiting").textContent = known(counts?.students?.waiting)
  $("count-chatting").textContent = known(counts?.students?.chatting)
  $("count-finished").textContent = known(counts?.students?.finished)
  renderTake()
}

function renderTake(){
  const waiting = counts?.students?.waiting
  let reason = ""
  if(!joined) reason = "Connecting…"
  else if(activeChats() >= MAX_CHATS) reason = `You have ${MAX_CHATS} chats open. End one to take another student.`
  else if(waiting === 0) reason = "Nobody is waiting."
  else if(claiming) reason = "Taking the next student…"
  take.disabled = reason !== ""
  $("take-reason").textContent = reason || claimNote
  document.body.dataset.state = joined ? "ready" : "connecting"
}

// ------------------------------------------------------------------ presence
const presence = socket.channel("presence:teachers", {userId: me, role: "teacher", liveStatus: true})
presence.on("user:status", (payload) => {
  counts = payload
  claimNote = ""
  renderCounts()
})
presence.on(`new:chat:${me}`, (payload) => openPane(payload))
presence.join()
  .receive("ok", () => {
    if(joinedBefore){
      // A rejoin after the connection dropped: the server abandoned our
      // chats and put their students back in line.
      for(const chat of chats.values()){
        if(chat.active) endPane(chat, "The connection was lost; the student went back to the line.")
      }
      past.refresh()
    }
    joinedBefore = true
    joined = true
    renderTake()
  })
  .receive("error", (resp) => {
    joined = false
    $("take-reason").textContent = `The server refused to let you in: ${resp?.reason ?? "unknown reason"}.`
  })
presence.onError(() => { joined = false; renderTake() })

take.addEventListener("click", () => {
  if(take.disabled) return
  claiming = true
  claimNote = ""
  renderTake()
  const done = (note) => { claiming = false; claimNote = note; renderTake() }
  presence.push("claim:student", {})
    .receive("ok", (chat) => {
      if(chat && typeof chat.id === "string"){
        openPane(chat)
        done("")
      } else {
        done("Nobody was waiting.")
      }
    })
    .receive("error", (resp) => done(`Could not take a student: ${resp?.reason ?? "unknown reason"}.`))
    .receive("timeout", () => done("The server did not answer. Try again."))
})

// ------------------------------------------------------------------ chat panes
function openPane(payload){
  if(!payload || typeof payload.id !== "string" || chats.has(payload.id)) return
  const partner = displayName(payload.student_id)
  const pane = $("pane-template").content.firstElementChild.cloneNode(true)
  pane.dataset.chatId = payload.id
  pane.dataset.student = partner
  pane.setAttribute("aria-labelledby", `pane-title-${payload.id}`)
  pane.querySelector(".pane-title").id = `pane-title-${payload.id}`
  pane.querySelector(".partner").textContent = partner
  const input = pane.querySelector("input")
  input.id = `text-${payload.id}`
  const label = pane.querySelector("label")
  label.htmlFor = input.id
  label.textContent = `Message to ${partner}`
  pane.querySelector(".messages").setAttribute("aria-label", `Messages with ${partner}`)
  pane.querySelector(".end").setAttribute("aria-label", `End chat with ${partner}`)
  pane.querySelector(".close").setAttribute("aria-label", `Close chat with ${partner}`)

  const channel = socket.channel(`chats:${payload.id}`, {userId: me, role: "teacher", endReason: true})
  const chat = {id: payload.id, channel, pane, partner, active: true, leaving: false}
  chats.set(payload.id, chat)
  const log = pane.querySelector(".messages")
  const status = pane.querySelector(".pane-status")

  channel.on("teacher:receive", (msg) => appendMessage(log, msg, {fallbackName: partner}))
  channel.on("chat:ready", () => { if(chat.active) status.textContent = `${partner} is here.` })
  channel.on("chat:terminated", (msg) => {
    const reason = msg?.reason
    if(typeof reason === "string") endReasons.set(chat.id, reason)
    past.refresh()
    endPane(chat, reason === "student left" ? `${partner} left.`
      : reason === "ended by student" ? `${partner} ended the chat.`
      : reason === "ended by teacher" ? "You ended the chat."
      : "The chat has ended.")
  })
  channel.onClose(() => { if(!chat.leaving) endPane(chat, "The chat was closed by the server.") })
  channel.join()
    .receive("ok", () => channel.push("teacher:joined", {}))
    .receive("error", (resp) => endPane(chat, `Could not open the chat: ${resp?.reason ?? "unknown reason"}.`))

  onCompose(pane.querySelector("form"), input, (text) => {
    if(!chat.active) return
    const message = messagePayload(text, name)
    channel.push("teacher:send", message)
    appendMessage(log, message, {own: true})
  })
  pane.querySelector(".end").addEventListener("click", () => {
    if(chat.active) channel.push("chat:terminate", {})
  })
  pane.querySelector(".close").addEventListener("click", () => removePane(chat))

  appendNote(log, `You took ${partner} from the line.`)
  // Keep at most five panes: make room by dropping the oldest ended one.
  const ended = [...chats.values()].filter((c) => !c.active)
  if(chats.size > MAX_CHATS && ended.length > 0) removePane(ended[0], false)
  panes.append(pane)
  renderTake()
  input.focus()
}

function endPane(chat, text){
  if(!chat.active) return
  chat.active = false
  chat.leaving = true
  chat.channel.leave()
  const {pane} = chat
  pane.dataset.state = "ended"
  pane.querySelector(".pane-status").textContent = text
  appendNote(pane.querySelector(".messages"), text)
  pane.querySelector("input").disabled = true
  pane.querySelector(".send").disabled = true
  const endButton = pane.querySelector(".end")
  const hadFocus = pane.contains(document.activeElement)
  endButton.hidden = true
  const close = pane.querySelector(".close")
  close.hidden = false
  if(hadFocus) close.focus()
  renderTake()
}

function removePane(chat, moveFocus = true){
  if(chat.active) return
  chats.delete(chat.id)
  chat.pane.remove()
  if(moveFocus) (take.disabled ? $("main") : take).focus()
  renderTake()
}

renderCounts()
past.refresh()
