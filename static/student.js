// The student page: joins its presence topic and the queue, shows its place
// in line and the teachers online (live, from `queue:position`), opens the
// chat when a teacher takes it, and offers "Get back in line" when it ends.
//
// States (also on <body data-state>): connecting → waiting → chatting → ended
// → (get back in line) waiting. If the teacher disconnects mid-chat the
// server closes the chat channel and puts this student back at the head of
// the line: chatting → waiting, until the next `new:chat`.

import {appendMessage, appendNote, connect, displayName, messagePayload, onCompose, showSignInProblem, signIn, signOutButton} from "./common.js"

const $ = (id) => document.getElementById(id)
// Who this page is: a stored token, one from #token=, or a guest sign-in.
// Without one the page says why and goes no further.
const session = await signIn("student").catch((error) => {
  showSignInProblem($("connection"), error)
  return null
})
if(!session) await new Promise(() => {})
const name = session.name
const me = session.id
$("me").textContent = name
signOutButton($("sign-out"), session)

const socket = connect($("connection"), session)
const log = $("messages")

let state = "connecting"
let queue = null        // last queue:position payload: {position, waiting, teachers}
let chat = null         // {id, channel, partner, leaving}
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
  const chatting = state === "chatting"
  $("text").disabled = !chatting
  $("send").disabled = !chatting
  $("end").hidden = !chatting
  $("after").hidden = state !== "ended"
  renderLine()
}

function renderLine(){
  const known = (v) => (Number.isInteger(v) ? String(v) : "…")
  const position = state === "waiting" ? queue?.position : null
  $("place").textContent = known(position)
  $("place-label").textContent = position === 1 ? "You're next in line" : "Your place in line"
  $("teachers").textContent = known(queue?.teachers)
  $("waiting").textContent = known(queue?.waiting)
  $("no-teachers").hidden = queue?.teachers !== 0
  document.title = {
    connecting: `Student · tutor-queue`,
    waiting: Number.isInteger(position) ? `#${position} in line · tutor-queue` : `In line · tutor-queue`,
    chatting: `Chat with ${chat?.partner} · tutor-queue`,
    ended: `Chat ended · tutor-queue`,
  }[state]
}

function notice(text){ $("notice").textContent = text }

// ------------------------------------------------------------------ presence and queue
const presence = socket.channel(`presence:student:${me}`, {userId: me, role: "student", queuePosition: true})
presence.on("queue:position", (payload) => {
  queue = payload
  renderLine()
})
presence.on("new:chat", (payload) => openChat(payload))
presence.join()
  .receive("ok", () => {
    if(joinedBefore){
      // A rejoin after the connection dropped: the server has forgotten us
      // (no session resumption), so a chat in progress is over.
      if(state === "chatting"){
        leaveChat()
        chatOver("The connection was lost, so the chat ended.")
        return
      }
    }
    joinedBefore = true
    if(state !== "ended") getInLine()
  })
  .receive("error", (resp) => notice(`The server refused to let you in: ${resp?.reason ?? "unknown reason"}.`))

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
  const channel = socket.channel(`chats:${payload.id}`, {userId: me, role: "student", endReason: true})
  const current = {id: payload.id, channel, partner, leaving: false}
  chat = current
  channel.on("student:receive", (msg) => appendMessage(log, msg, {fallbackName: partner}))
  channel.on("chat:terminated", (msg) => {
    if(chat !== current) return
    const reason = msg?.reason
    leaveChat()
    chatOver(reason === "ended by teacher" ? `${partner} ended the chat.`
      : reason === "ended by student" ? "You ended the chat."
      : "The chat has ended.")
  })
  // phx_close from the server: the teacher disconnected and we are back at
  // the head of the line (our own leave() also closes, hence `leaving`).
  channel.onClose(() => {
    if(chat === current && !current.leaving) backInLine(`${partner} disconnected. You are back at the front of the line.`)
  })
  channel.join()
    .receive("ok", () => channel.push("student:joined", {}))
    .receive("error", () => {
      // The teacher vanished before we got in: the server put us back at the
      // front of the line already. Stop phoenix.js retrying the join.
      if(chat === current) backInLine(`${partner} is no longer available. You are back at the front of the line.`)
    })

  notice("")
  log.replaceChildren()
  $("partner").textContent = partner
  appendNote(log, `${partner} took you from the line. Say hello!`)
  setState("chatting")
  $("text").focus()
}

function leaveChat(){
  if(!chat) return
  chat.leaving = true
  chat.channel.leave()
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
  if(!chat || state !== "chatting") return
  const payload = messagePayload(text, name)
  chat.channel.push("student:send", payload)
  appendMessage(log, payload, {own: true})
})

$("end").addEventListener("click", () => {
  if(chat) chat.channel.push("chat:terminate", {})
})

render()
