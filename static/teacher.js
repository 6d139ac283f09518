// The teacher page: live counts (from `user:status`), a "Take next student"
// button, and one pane per chat (at most five active), each with its own
// input, an unread badge ("2 new") and "End chat" (which asks first). Two
// students of the same name are told apart by a short id ("Ana (#3f2a)").
// A pane says when its chat ended and why, e.g. that the student left, and
// moves to "Ended chats" below the active ones; "Close" removes it. Below
// them, "Past chats" (past-chats.js) lists this teacher's finished chats and
// their transcripts.
//
// Office hours (issue 14): the waiting list with each student's question
// (waiting-list.js; a pane shows its student's question, from the list at
// claim time, else from the transcript API's chat object), opening and
// closing the queue and announcements (queue-controls.js, announcements.js),
// and a notification when someone joins an empty queue (alerts.js).
//
// Keeping one's chats (PROTOCOL 6.3: the page always has a token). When the
// connection drops, the banner says "Reconnecting…" and until when the chats
// are kept; what is written meanwhile waits and is sent on the way back. On
// every (re)join of `presence:teachers` its reply `{"chats": [...]}` lists
// this teacher's active chats: each pane is joined again (with what it
// missed), a pane for a chat not listed says it ended meanwhile, and a chat
// without a pane (after a reload: all of them) gets one, with its history.
// A pane says "Ana is reconnecting…" while its student is away.

import {attention, canNotify, notificationPermission, prepareAlerts, setTitle} from "./alerts.js"
import {announcements} from "./announcements.js"
import {apiFetch, appendNote, clock, connect, displayName, keptText, renderText, showSignInProblem, signIn, signOutButton} from "./common.js"
import {onCompose} from "./compose.js"
import {confirmFirst} from "./confirm.js"
import {Conversation} from "./conversation.js"
import {pastChats} from "./past-chats.js"
import {queueControls} from "./queue-controls.js"
import {watchLog} from "./unread.js"
import {waitingList} from "./waiting-list.js"

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
setTitle(`${name} (teacher) · tutor-queue`)

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
const presence = socket.channel("presence:teachers",
  {userId: me, role: "teacher", liveStatus: true, waitingList: true, queueState: true})
presence.on("user:status", (payload) => {
  counts = payload
  claimNote = ""
  renderCounts()
})

// ------------------------------------------------------------------ office hours
const waiting = waitingList({list: $("waiting-list"), status: $("waiting-status")})
presence.on("queue:waiting", (payload) => {
  const before = waiting.total
  waiting.update(payload)
  // Someone joined an empty queue: worth a notification (not every join).
  const first = waiting.total > 0 ? payload.students?.[0] : null
  if(before === 0 && first){
    const who = typeof first.name === "string" && first.name ? first.name : displayName(first.id)
    attention({title: `${who} is waiting`, body: typeof first.question === "string" && first.question ? first.question : "No question given.", tag: "tutor-queue-waiting"})
  }
})
const controls = queueControls({presence, $, connected: () => joined && link.up})
presence.on("queue:state", (payload) => controls.state(payload))
const shownAnnouncements = announcements($("announcements"))
presence.on("queue:announcement", (payload) => shownAnnouncements.show(payload))

// "Turn on alerts": the permission is asked on a click (browsers require it).
const alertsOn = $("alerts-on")
const renderAlertsOn = () => { alertsOn.hidden = !canNotify() || notificationPermission() !== "default" }
alertsOn.addEventListener("click", () => prepareAlerts().then(renderAlertsOn))
renderAlertsOn()
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
    controls.render()
  })
  .receive("error", (resp) => {
    joined = false
    $("take-reason").textContent = `The server refused to let you in: ${resp?.reason ?? "unknown reason"}.`
  })
presence.onError(() => { joined = false; renderTake(); controls.render() })
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
  prepareAlerts()
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
// Two students with the same name are told apart by a short id: "Ana (#3f2a)".
function shortId(studentId){
  const id = String(studentId ?? "")
  const suffix = id.match(/·([0-9a-z]+)$/)
  return (suffix ? suffix[1] : id).slice(0, 4) || "?"
}

/** Sets every pane's name: the student's name, with a short id where two panes share it. */
function relabel(){
  const byName = new Map()
  for(const chat of chats.values()){
    const ids = byName.get(chat.partner) ?? new Set()
    ids.add(chat.studentId)
    byName.set(chat.partner, ids)
  }
  for(const chat of chats.values()){
    const label = byName.get(chat.partner).size > 1 ? `${chat.partner} (#${shortId(chat.studentId)})` : chat.partner
    if(chat.label === label) continue
    chat.label = label
    chat.conversation.partner = label
    const {pane} = chat
    pane.dataset.label = label
    pane.querySelector(".partner").textContent = label
    pane.querySelector("label").textContent = `Message to ${label}`
    pane.querySelector(".messages").setAttribute("aria-label", `Messages with ${label}`)
    pane.querySelector(".end").setAttribute("aria-label", `End chat with ${label}`)
    pane.querySelector(".close").setAttribute("aria-label", `Close chat with ${label}`)
  }
}

function openPane(payload, {restored = false} = {}){
  if(!payload || typeof payload.id !== "string" || chats.has(payload.id)) return
  const partner = displayName(payload.student_id)
  const pane = $("pane-template").content.firstElementChild.cloneNode(true)
  pane.dataset.chatId = payload.id
  pane.dataset.student = partner
  pane.setAttribute("aria-labelledby", `pane-title-${payload.id}`)
  pane.querySelector(".pane-title").id = `pane-title-${payload.id}`
  const input = pane.querySelector("textarea")
  input.id = `text-${payload.id}`
  pane.querySelector("label").htmlFor = input.id

  const log = pane.querySelector(".messages")
  const status = pane.querySelector(".pane-status")
  const badge = pane.querySelector(".unread")
  const chat = {id: payload.id, studentId: String(payload.student_id ?? ""), pane, partner, label: null,
    active: true, conversation: null, unread: null, endAsk: null}
  const who = () => chat.label ?? partner
  chats.set(payload.id, chat)

  chat.conversation = new Conversation({link, me: session, chatId: payload.id, partner, log, hooks: {
    ready(){ if(chat.active) status.textContent = `${who()} is here.` },
    // Back on a chat that was going on (after a reload or a drop): the
    // student is here unless a `chat:away` follows.
    joined(rejoining){
      if(chat.active && (restored || rejoining)) status.textContent = `${who()} is here.`
    },
    terminated(msg){
      const reason = msg?.reason
      if(typeof reason === "string") endReasons.set(chat.id, reason)
      past.refresh()
      endPane(chat, reason === "student left" ? `${who()} left.`
        : reason === "ended by student" ? `${who()} ended the chat.`
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
      status.textContent = `${who()} is reconnecting…${until ? ` The chat is kept until ${clock(until)}.` : ""}`
    },
    back(){
      if(!chat.active) return
      delete pane.dataset.partner
      status.textContent = `${who()} is back.`
    },
    message(){ chat.unread.incoming() },
  }})
  relabel()
  chat.unread = watchLog(log, {scope: pane, onCount(n){
    badge.hidden = n === 0
    badge.textContent = n === 0 ? "" : `${n} new`
    renderTitle()
  }})
  chat.conversation.join()

  onCompose(pane.querySelector("form"), input, (text) => {
    if(chat.active) chat.conversation.send(text)
  })
  // "End chat" asks first, in the pane.
  chat.endAsk = confirmFirst(pane.querySelector(".end"), {
    question: () => `End the chat with ${who()}?`,
    yes: () => "Yes, end it",
    labels: () => ({yes: `Yes, end the chat with ${who()}`, no: `Keep chatting with ${who()}`}),
    onConfirm(){
      if(chat.active && link.up) chat.conversation.channel?.push("chat:terminate", {})
    },
  })
  pane.querySelector(".close").addEventListener("click", () => removePane(chat))

  // The question: from the waiting list; after a reload (or for a student
  // never seen listed) from the transcript API.
  const listed = waiting.questionOf(chat.studentId)
  if(listed !== undefined) showQuestion(chat, listed)
  else if(restored) questionFromStore(chat, 0)
  else if(waiting.total !== null) questionFromStore(chat, 1000)
  appendNote(log, `You took ${who()} from the line.`)
  panes.append(pane)
  renderTake()
  input.focus()
}

/** Shows the student's `question` (if any) in the pane's header. */
function showQuestion(chat, question){
  if(typeof question !== "string" || !question) return
  const box = chat.pane.querySelector(".pane-question")
  renderText(box.querySelector(".pane-question-text"), question)
  box.hidden = false
}

/** The chat object's `question` from the transcript API (after `delay` ms: the store commits the chat just after the claim). */
async function questionFromStore(chat, delay){
  if(delay) await new Promise((resolve) => setTimeout(resolve, delay))
  try {
    const response = await apiFetch(session, `/api/chats/${encodeURIComponent(chat.id)}/transcript?limit=1`, {cache: "no-store"})
    if(!response.ok) return
    const body = await response.json()
    showQuestion(chat, body?.chat?.question)
  } catch {}
}

/** The page's title: the teacher's name, with the count of unread messages first. */
function renderTitle(){
  const unread = [...chats.values()].reduce((n, chat) => n + (chat.unread?.count ?? 0), 0)
  setTitle(`${unread > 0 ? `(${unread}) ` : ""}${name} (teacher) · tutor-queue`)
}

// Ended panes go below the active ones, newest first, into "Ended chats"
// (collapsed: its summary says how many, and how the latest ended); at most
// MAX_ENDED are kept there.
const MAX_ENDED = 5
const ended = $("ended")
const endedPanes = $("ended-panes")

function renderEnded(latest = null){
  const n = endedPanes.childElementCount
  ended.hidden = n === 0
  $("ended-title").textContent = `Ended chats (${n})`
  if(latest !== null) $("ended-latest").textContent = `Latest: ${latest}`
  if(n === 0) $("ended-latest").textContent = ""
}

function endPane(chat, text){
  if(!chat.active) return
  chat.active = false
  chat.conversation.end()
  chat.endAsk.cancel()
  delete chat.pane.dataset.partner
  const {pane} = chat
  pane.dataset.state = "ended"
  pane.querySelector(".pane-status").textContent = text
  appendNote(pane.querySelector(".messages"), text)
  pane.querySelector("textarea").disabled = true
  pane.querySelector(".send").disabled = true
  const hadFocus = pane.contains(document.activeElement)
  pane.querySelector(".end").hidden = true
  pane.querySelector(".close").hidden = false
  endedPanes.prepend(pane)
  const endedChats = [...chats.values()].filter((c) => !c.active)
  for(const old of endedChats.slice(0, Math.max(0, endedChats.length - MAX_ENDED))) removePane(old, false)
  renderEnded(text.startsWith(chat.label) ? text : `${chat.label} — ${text}`)
  renderTake()
  if(hadFocus) (take.disabled ? $("main") : take).focus()
}

function removePane(chat, moveFocus = true){
  if(chat.active) return
  chats.delete(chat.id)
  chat.pane.remove()
  relabel()
  renderEnded()
  renderTitle()
  if(moveFocus) (take.disabled ? $("main") : take).focus()
  renderTake()
}

renderCounts()
past.refresh()
