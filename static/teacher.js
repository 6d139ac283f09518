// The teacher page: live counts (from `user:status`), a "Take next student"
// button, and one pane per chat (at most five active), each with its own
// input and "End chat" button. A pane says when its chat ended and why, e.g.
// that the student left; "Close" then removes it. Below them, "Past chats"
// (past-chats.js) lists this teacher's finished chats and their transcripts.
//
// Keeping one's chats (PROTOCOL 6.3: the page always has a token). When the
// connection drops, the banner says "Reconnecting…" and until when the chats
// are kept; what is written meanwhile waits and is sent on the way back. On
// every (re)join of `presence:teachers` its reply `{"chats": [...]}` lists
// this teacher's active chats: each pane is joined again (with what it
// missed), a pane for a chat not listed says it ended meanwhile, and a chat
// without a pane (after a reload: all of them) gets one, with its history.
// A pane says "Ana is reconnecting…" while its student is away.

import {appendNote, clock, connect, displayName, keptText, onCompose, showSignInProblem, signIn, signOutButton} from "./common.js"
import {Conversation} from "./conversation.js"
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
document.title = `${name} (teacher) · tutor-queue`

const link = connect($("connection"), session)
const socket = link.socket
const panes = $("panes")
const take = $("take")

let joined = false
let joinedBefore = false
let claiming = false
let counts = null          // last user:status payload
let claimNote = ""         // e.g. "Nobody was waiting", until the counts change
const chats = new Map()    // chat id → {id, conversation, pane, partner, active}
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
  .receive("ok", (reply) => {
    if(Array.isArray(reply?.chats)) follow(reply.chats, joinedBefore)
    else if(joinedBefore){
      // A server without join replies abandoned our chats when the
      // connection dropped, and put their students back in line.
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
// Signing out leaves at once: a deliberate leave (the chats are not kept).
signOutButton($("sign-out"), session, () => presence.leave())

link.describe = () => activeChats() > 0
  ? `${keptText(link, activeChats() === 1 ? "Your chat" : "Your chats")} Messages you write now are sent when you are back.`
  : ""
link.onDown(() => {
  for(const chat of chats.values()) if(chat.active) chat.conversation.detach()
})

/** Follows the join reply's list of this teacher's active chats (PROTOCOL 6.3). */
function follow(current, rejoined){
  const listed = new Set(current.filter((c) => typeof c?.id === "string").map((c) => c.id))
  for(const chat of chats.values()){
    if(chat.active && !listed.has(chat.id)) endPane(chat, `This chat ended while you were offline.`)
  }
  for(const payload of current){
    if(typeof payload?.id !== "string") continue
    const chat = chats.get(payload.id)
    if(!chat) openPane(payload, {restored: true})
    else if(chat.active) chat.conversation.rejoin()
  }
  if(rejoined) past.refresh()
}

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
function openPane(payload, {restored = false} = {}){
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

  const log = pane.querySelector(".messages")
  const status = pane.querySelector(".pane-status")
  const chat = {id: payload.id, pane, partner, active: true, conversation: null}
  chats.set(payload.id, chat)

  chat.conversation = new Conversation({link, me: session, chatId: payload.id, partner, log, hooks: {
    ready(){ if(chat.active) status.textContent = `${partner} is here.` },
    // Back on a chat that was going on (after a reload or a drop): the
    // student is here unless a `chat:away` follows.
    joined(rejoining){
      if(chat.active && (restored || rejoining)) status.textContent = `${partner} is here.`
    },
    terminated(msg){
      const reason = msg?.reason
      if(typeof reason === "string") endReasons.set(chat.id, reason)
      past.refresh()
      endPane(chat, reason === "student left" ? `${partner} left.`
        : reason === "ended by student" ? `${partner} ended the chat.`
        : reason === "ended by teacher" ? "You ended the chat."
        : "The chat has ended.")
    },
    closed(){ endPane(chat, "The chat was closed by the server.") },
    joinError(reason, rejoining){
      endPane(chat, rejoining ? "This chat ended while you were offline." : `Could not open the chat: ${reason ?? "unknown reason"}.`)
    },
    away(until){
      if(!chat.active) return
      pane.dataset.partner = "away"
      status.textContent = `${partner} is reconnecting…${until ? ` The chat is kept until ${clock(until)}.` : ""}`
    },
    back(){
      if(!chat.active) return
      delete pane.dataset.partner
      status.textContent = `${partner} is back.`
    },
  }})
  chat.conversation.join()

  onCompose(pane.querySelector("form"), input, (text) => {
    if(chat.active) chat.conversation.send(text)
  })
  pane.querySelector(".end").addEventListener("click", () => {
    if(chat.active && link.up) chat.conversation.channel?.push("chat:terminate", {})
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
  chat.conversation.end()
  delete chat.pane.dataset.partner
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
