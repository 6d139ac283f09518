// The student page: joins its presence topic, and on "Get in line" the
// queue, with an optional question (at most 500 characters); shows its place
// in line, the estimated wait ("about 4 minutes", once the server knows the
// pace), the teachers online (live, from `queue:position`), whether the queue
// is closed and why (`queue:state`), and what teachers announce
// (`queue:announcement`); opens the chat when a teacher takes it, and offers
// "Get back in line" when it ends. When the student becomes next, and when a
// teacher takes it, the page gets attention (alerts.js: a notification, a
// beep, a flashing title; permission is asked on the "Get in line" click).
//
// States (also on <body data-state>): connecting → idle (the question and
// "Get in line") → waiting → chatting → ended → (get back in line) waiting. If the teacher disconnects for good mid-chat
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

import {attention, prepareAlerts, setTitle} from "./alerts.js"
import {announcements} from "./announcements.js"
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

const MAX_QUESTION = 500
// The question sent with the place in line, kept for this tab (a reload
// sends it again with `student:ready`, which keeps the place).
const QUESTION_KEY = "tutor-queue.question"

let state = "connecting"
let queue = null        // last queue:position payload: {position, waiting, teachers, eta_s}
let queueState = null   // last queue:state payload: {open, message}
let sentQuestion = sessionStorage.getItem(QUESTION_KEY) ?? ""
let chat = null         // {id, conversation, partner}
let joinedBefore = false

// ------------------------------------------------------------------ rendering
function setState(next){
  state = next
  document.body.dataset.state = next
  render()
}

function render(){
  const inLine = state === "connecting" || state === "idle" || state === "waiting"
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
  $("again").disabled = queueState?.open === false
  if(state !== "chatting") $("partner-status").textContent = ""
  renderLine()
  link.renderBanner()
}

function renderLine(){
  const known = (v) => (Number.isInteger(v) ? String(v) : "…")
  const position = state === "waiting" ? queue?.position : null
  const waiting = state === "waiting"
  $("line-title").textContent = waiting ? "Waiting for a teacher" : "Ask a teacher"
  $("place-status").hidden = state === "idle"
  $("keep-hint").hidden = state === "idle"
  // The estimated wait, once the server knows the pace (`eta_s`, else null).
  const eta = waiting && Number.isFinite(queue?.eta_s) ? queue.eta_s : null
  $("eta").hidden = eta === null
  $("eta").textContent = eta === null ? "" : `Estimated wait: about ${minutes(eta)}`
  // The question box: "Get in line" (or, in line, "Update question").
  const closed = queueState?.open === false
  $("ask").hidden = !(state === "idle" || waiting)
  $("get-in-line").textContent = !waiting ? "Get in line" : sentQuestion ? "Update question" : "Add the question"
  $("get-in-line").disabled = !link.up || (closed && !waiting) || state === "connecting"
  $("queue-closed").hidden = !closed || !(state === "idle" || waiting || state === "ended")
  $("queue-closed-title").textContent = waiting
    ? "The queue is closed to new students. You keep your place."
    : "The queue is closed: you cannot get in line right now."
  $("queue-closed-message").textContent = closed && queueState?.message ? `“${queueState.message}”` : ""
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
    : waiting ? "No teacher is online right now. You keep your place."
    : "No teacher is online right now."
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
  setTitle({
    connecting: `Student · tutor-queue`,
    idle: `Student · tutor-queue`,
    waiting: Number.isInteger(position) ? `#${position} in line · tutor-queue` : `In line · tutor-queue`,
    chatting: `Chat with ${chat?.partner} · tutor-queue`,
    ended: `Chat ended · tutor-queue`,
  }[state])
}

/** "1 minute", "4 minutes" (at least one). */
function minutes(seconds){
  const m = Math.max(1, Math.round(seconds / 60))
  return m === 1 ? "1 minute" : `${m} minutes`
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
const presence = socket.channel(`presence:student:${me}`, {userId: me, role: "student", queuePosition: true, queueState: true})
presence.on("queue:position", (payload) => {
  const before = state === "waiting" ? queue?.position : null
  queue = payload
  renderLine()
  // Next in line (from further back): worth a notification.
  if(state === "waiting" && payload?.position === 1 && Number.isInteger(before) && before > 1){
    attention({title: "You're next in line", body: payload?.teachers === 0
      ? "No teacher is online right now; you are first when one comes."
      : "A teacher will take you soon.", tag: "tutor-queue-line"})
  }
})
presence.on("queue:state", (payload) => {
  if(typeof payload?.open !== "boolean") return
  queueState = {open: payload.open, message: typeof payload.message === "string" ? payload.message : null}
  render()
})
const shownAnnouncements = announcements($("announcements"))
presence.on("queue:announcement", (payload) => shownAnnouncements.show(payload))
presence.on("new:chat", (payload) => {
  openChat(payload)
  if(typeof payload?.id === "string"){
    attention({title: `${displayName(payload.teacher_id)} is ready for you`, body: "Your chat has started.", tag: "tutor-queue-line"})
  }
})
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
      getInLine(sentQuestion)
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
    getInLine(sentQuestion)
    setState("waiting")
    return
  }
  // Present and not in line: away longer than the window (in line again,
  // at the end, with the same question), or new here (the question first).
  if(rejoined && state === "waiting"){
    notice("You were away too long and lost your place. You are in line again, at the end.")
    getInLine(sentQuestion)
    return
  }
  if(state === "connecting") setState("idle")
}

/** A server without join replies forgets a student whose connection drops. */
function legacyRejoin(rejoined){
  if(rejoined && state === "chatting"){
    leaveChat()
    chatOver("The connection was lost, so the chat ended.")
    return
  }
  if(state === "waiting") getInLine(sentQuestion)
  else if(state === "connecting") setState("idle")
}

/**
 * `student:ready`, with `question` (trimmed; none when empty): gets in line,
 * or, in line, keeps the place and changes the question.
 */
function getInLine(question = ""){
  const text = question.trim()
  $("ask-status").textContent = ""
  presence.push("student:ready", text ? {userId: me, question: text} : {userId: me})
    .receive("ok", () => {
      const changed = state === "waiting" && text !== sentQuestion
      sentQuestion = text
      sessionStorage.setItem(QUESTION_KEY, text)
      if(state === "connecting" || state === "idle") setState("waiting")
      else renderLine()
      if(changed) $("ask-status").textContent = text ? "Question updated." : "Question removed."
    })
    .receive("error", (resp) => {
      if(resp?.reason === "queue closed"){
        queueState = {open: false, message: typeof resp.message === "string" ? resp.message : null}
        if(state === "waiting") setState("idle")
        else render()
        notice("The queue is closed: you cannot get in line right now.")
      } else if(resp?.reason === "question too long"){
        $("ask-status").textContent = `Your question is too long: at most ${(resp.limit ?? MAX_QUESTION).toLocaleString("en")} characters.`
      } else {
        notice(`Could not get in line: ${resp?.reason ?? "unknown reason"}.`)
      }
    })
    .receive("timeout", () => notice("The server did not answer. Reload the page to try again."))
}

// "Get in line" (or "Update question"): the first click also asks for
// notification permission and readies the sound (a user gesture is needed).
$("question").value = sentQuestion
onCompose($("ask"), $("question"), (text) => {
  prepareAlerts()
  notice("")
  getInLine(text)
}, {limit: MAX_QUESTION, keep: true, allowEmpty: true})

$("again").addEventListener("click", () => {
  notice("")
  log.replaceChildren()
  // A new turn: the last question was for the last chat.
  sentQuestion = ""
  sessionStorage.removeItem(QUESTION_KEY)
  $("question").value = ""
  $("ask-status").textContent = ""
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
