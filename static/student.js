// The student page: joins its presence topic and the queue, shows its place
// in line and the teachers online (live, from `queue:position`), opens the
// chat when a teacher takes it, and offers "Get back in line" when it ends.
//
// States (also on <body data-state>): connecting → waiting → chatting → ended
// → (get back in line) waiting. If the teacher disconnects for good mid-chat
// the server closes the chat channel and puts this student back at the head
// of the line: chatting → waiting, until the next `new:chat`.
//
// Keeping one's place (PROTOCOL 6.3: the page always has a token). When the
// connection drops, the banner says "Reconnecting…" and until when the place
// or the chat is kept (the moment of the drop + the server's grace window);
// the place stays on screen, and messages written meanwhile wait and are sent
// on the way back. On every (re)join of the presence topic its reply
// `{"state": …, "chat": …}` says where this student stands, and the page
// follows it: waiting (still at its place: `student:ready` again, which keeps
// it), chatting (the chat is joined again, with what was missed), finished
// (the chat ended meanwhile), or present (away too long: the place is lost,
// and the page says so before getting back in line).

import {appendNote, clock, connect, displayName, keptText, showSignInProblem, signIn, signOutButton} from "./common.js"
import {onCompose} from "./compose.js"
import {confirmFirst} from "./confirm.js"
import {Conversation} from "./conversation.js"
import {watchLog} from "./unread.js"

const $ = (id) => document.getElementById(id)
// Who this page is: a stored token, one from #token=, or a guest sign-in.
// Without one the page says why and goes no further.
const session = await signIn("student").catch((error) => {
  showSignInProblem($("connection"), error)
  return null
})
if(!session) await new Promise(() => {})
const me = session.id
$("me").textContent = session.name

const link = connect($("connection"), session)
const socket = link.socket
const log = $("messages")
// "New messages ↓" over the log when a message arrives while it is scrolled up.
const unread = watchLog(log, {scope: $("chat")})

let state = "connecting"
let queue = null        // last queue:position payload: {position, waiting, teachers}
let chat = null         // {id, conversation, partner}
let joinedBefore = false

// ------------------------------------------------------------------ rendering
function setState(next){
  state = next
  document.body.dataset.state = next
  render()
}

function render(){
  const inLine = state === "connecting" || state === "waiting"
  $("line").hidden = !inLine
  $("chat").hidden = inLine
  // While the connection is down, what is written waits and is sent later.
  const chatting = state === "chatting"
  $("text").disabled = !chatting
  $("send").disabled = !chatting
  if(!chatting) endAsk.cancel()
  $("end").hidden = !chatting || endAsk.open
  $("end").disabled = !link.up
  $("after").hidden = state !== "ended"
  if(state !== "chatting") $("partner-status").textContent = ""
  renderLine()
  link.renderBanner()
}

function renderLine(){
  const known = (v) => (Number.isInteger(v) ? String(v) : "…")
  const position = state === "waiting" ? queue?.position : null
  $("place").textContent = known(position)
  const noTeacher = queue?.teachers === 0
  // First in line means "next" only when someone can take you.
  $("place-label").textContent = position !== 1 ? "Your place in line"
    : noTeacher ? "You're first in line — no teacher is online right now"
    : "You're next in line"
  $("teachers").textContent = known(queue?.teachers)
  $("waiting").textContent = known(queue?.waiting)
  $("no-teachers").hidden = !noTeacher
  $("no-teachers").textContent = position === 1
    ? "You keep your place: the first teacher to come online takes you."
    : "No teacher is online right now. You keep your place."
  // Disconnected while waiting: the place shown is the one kept for us.
  const until = link.keptUntil()
  const keeping = !link.up && state === "waiting" && link.droppedAt !== null
  $("kept").hidden = !keeping
  $("kept").textContent = !keeping ? ""
    : link.graceMs === 0 ? "Not kept while you are disconnected"
    : until === null ? "Kept while you reconnect"
    : Date.now() > until ? `Kept until ${clock(until)}: it may be lost by now`
    : `Kept until ${clock(until)}`
  const grace = link.graceMs
  $("keep-hint").textContent = Number.isFinite(grace) && grace > 0
    ? `If your connection drops or you reload, your place is kept for ${duration(grace)}.`
    : "You keep your place while this page is open."
  document.title = {
    connecting: `Student · tutor-queue`,
    waiting: Number.isInteger(position) ? `#${position} in line · tutor-queue` : `In line · tutor-queue`,
    chatting: `Chat with ${chat?.partner} · tutor-queue`,
    ended: `Chat ended · tutor-queue`,
  }[state]
}

function duration(ms){
  const s = Math.round(ms / 1000)
  if(s < 60 || s % 60 !== 0) return s === 1 ? "1 second" : `${s} seconds`
  return s === 60 ? "1 minute" : `${s / 60} minutes`
}

function notice(text){ $("notice").textContent = text }

link.describe = () => state === "waiting" ? keptText(link, "Your place in line")
  : state === "chatting" ? `${keptText(link, "Your chat")} Messages you write now are sent when you are back.`
  : ""
link.onDown(() => {
  chat?.conversation.detach()
  render()
})
link.onUp(() => render())
// "kept until" turns into "may be lost" when the time is up.
setInterval(() => { if(!link.up) renderLine() }, 5000)

// ------------------------------------------------------------------ presence and queue
const presence = socket.channel(`presence:student:${me}`, {userId: me, role: "student", queuePosition: true})
presence.on("queue:position", (payload) => {
  queue = payload
  renderLine()
})
presence.on("new:chat", (payload) => openChat(payload))
presence.join()
  .receive("ok", (reply) => {
    const rejoined = joinedBefore
    joinedBefore = true
    if(typeof reply?.state === "string") follow(reply, rejoined)
    else legacyRejoin(rejoined)
  })
  .receive("error", (resp) => notice(`The server refused to let you in: ${resp?.reason ?? "unknown reason"}.`))
// Signing out leaves the line (and a chat) at once: a deliberate leave.
signOutButton($("sign-out"), session, () => presence.leave())

/** Follows the presence join reply `{"state", "chat"}` (PROTOCOL 6.3). */
function follow({state: where, chat: current}, rejoined){
  if(where === "chatting" && typeof current?.id === "string"){
    if(chat?.id === current.id){
      chat.conversation.rejoin()
      notice("")
      render()
    } else {
      openChat(current)
    }
    return
  }
  if(chat){
    // The chat we had when the connection went is not there any more.
    const {partner} = chat
    leaveChat()
    if(where === "waiting"){
      backInLine(`${partner} left while you were away. You are back at the front of the line.`)
      getInLine()
    } else if(where === "finished"){
      chatOver("The chat ended while you were away.")
    } else {
      chatOver("You were away too long: the chat ended and you lost your place in line.")
    }
    return
  }
  if(state === "ended") return
  if(where === "finished" && !rejoined){
    // A reload after the chat ended: offer to get back in line.
    log.replaceChildren()
    chatOver("Your chat has ended.")
    return
  }
  if(where === "waiting"){
    if(rejoined) notice("You're back, and you kept your place in line.")
    else if(state === "connecting") notice("Welcome back: you kept your place in line.")
    getInLine()
    setState("waiting")
    return
  }
  // Present and not in line: new here, or away longer than the window.
  if(rejoined && state === "waiting") notice("You were away too long and lost your place. You are in line again, at the end.")
  getInLine()
}

/** A server without join replies forgets a student whose connection drops. */
function legacyRejoin(rejoined){
  if(rejoined && state === "chatting"){
    leaveChat()
    chatOver("The connection was lost, so the chat ended.")
    return
  }
  if(state !== "ended") getInLine()
}

function getInLine(){
  presence.push("student:ready", {userId: me})
    .receive("ok", () => { if(state === "connecting") setState("waiting") })
    .receive("error", (resp) => notice(`Could not get in line: ${resp?.reason ?? "unknown reason"}.`))
    .receive("timeout", () => notice("The server did not answer. Reload the page to try again."))
}

$("again").addEventListener("click", () => {
  notice("")
  log.replaceChildren()
  setState("waiting")
  getInLine()
})

// ------------------------------------------------------------------ the chat
function openChat(payload){
  if(!payload || typeof payload.id !== "string") return
  if(chat?.id === payload.id) return
  if(chat) leaveChat()
  const partner = displayName(payload.teacher_id)
  const current = {id: payload.id, partner, conversation: null}
  chat = current
  const partnerStatus = $("partner-status")
  current.conversation = new Conversation({link, me: session, chatId: payload.id, partner, log, hooks: {
    terminated(msg){
      if(chat !== current) return
      const reason = msg?.reason
      leaveChat()
      chatOver(reason === "ended by teacher" ? `${partner} ended the chat.`
        : reason === "ended by student" ? "You ended the chat."
        : "The chat has ended.")
    },
    // phx_close from the server: the teacher is gone for good and we are
    // back at the head of the line.
    closed(){
      if(chat === current) backInLine(`${partner} disconnected. You are back at the front of the line.`)
    },
    joinError(reason, rejoining){
      if(chat !== current) return
      if(rejoining){
        leaveChat()
        chatOver("The chat ended while you were away.")
      } else {
        // The teacher vanished before we got in: the server put us back at
        // the front of the line already.
        backInLine(`${partner} is no longer available. You are back at the front of the line.`)
      }
    },
    away(until){
      if(chat === current) partnerStatus.textContent = `${partner} is reconnecting…${until ? ` The chat is kept until ${clock(until)}.` : ""}`
    },
    back(){
      if(chat === current) partnerStatus.textContent = `${partner} is back.`
    },
    message(){
      if(chat === current) unread.incoming()
    },
  }})
  current.conversation.join()

  notice("")
  log.replaceChildren()
  unread.clear()
  partnerStatus.textContent = ""
  $("partner").textContent = partner
  appendNote(log, `${partner} took you from the line. Say hello!`)
  setState("chatting")
  $("text").focus()
}

function leaveChat(){
  if(!chat) return
  chat.conversation.end()
  chat = null
}

function chatOver(text){
  appendNote(log, text)
  notice(text)
  setState("ended")
  $("again").focus()
}

function backInLine(text){
  leaveChat()
  log.replaceChildren()
  notice(text)
  setState("waiting")
}

onCompose($("compose"), $("text"), (text) => {
  if(chat && state === "chatting") chat.conversation.send(text)
})

// "End chat" asks first (in the page): "End the chat with Ms Rivera?"
const endAsk = confirmFirst($("end"), {
  question: () => `End the chat with ${chat?.partner ?? "your teacher"}?`,
  yes: () => "Yes, end the chat",
  onConfirm(){
    if(chat && link.up) chat.conversation.channel?.push("chat:terminate", {})
  },
})

render()
