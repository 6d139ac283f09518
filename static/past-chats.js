// The teacher page's "Past chats": this teacher's finished chats, newest
// first, read from the transcript API (`GET /api/chats?teacher=`), with
// "Load more" while the API has a next page, and a transcript view
// (`GET /api/chats/{id}/transcript`) that shows each message with its
// sender, time and text, under the student's question and time in line
// (issue 14: the chat object's `question` and `queued_at`).
//
// It only reads the API, over relative URLs (the page's CSP allows this
// server only), and it never throws into the live chat UI: a failed or odd
// answer becomes a short message beside the list or the transcript.
// Everything a client sent (payloads) is shown as text, never as HTML.

import {apiFetch, displayName, renderText} from "./common.js"
import {waited} from "./waiting-list.js"

const PAGE = 20             // chats per request
const MAX_PAGE = 500        // the API's largest page (a refresh reloads what is shown)
const AUTO_PAGES = 5        // "Load more" fetches up to this many pages to find a finished chat
const TIMEOUT_MS = 10000

const $ = (id) => document.getElementById(id)

class ApiError extends Error {}

let session = null          // the teacher signed in ({token, id, name, role}): the API needs its token

/** GET `url` (relative) as JSON; an `ApiError` with a short, readable message otherwise. */
async function getJson(url){
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS)
  try {
    let response
    try {
      response = await apiFetch(session, url, {cache: "no-store", signal: abort.signal})
    } catch {
      throw new ApiError(abort.signal.aborted ? "The server did not answer in time." : "Could not reach the server.")
    }
    let body = null
    try { body = await response.json() } catch {}
    if(!response.ok){
      const detail = typeof body?.error === "string" ? `: ${body.error.slice(0, 120)}` : ""
      throw new ApiError(response.status === 404 ? "It was not found."
        : response.status === 401 ? "Your sign-in has expired; signing in again…"
        : `The server answered ${response.status}${detail}.`)
    }
    if(!body || typeof body !== "object") throw new ApiError("The server's answer could not be read.")
    return body
  } finally {
    clearTimeout(timer)
  }
}

const isChat = (c) => c && typeof c === "object" && typeof c.id === "string" && Number.isFinite(c.created_at)
const finished = (c) => Number.isFinite(c.finished_at)

function date(ms){
  return new Date(ms)
}

function sameDay(a, b){
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate()
}

/** "14:05" today, "12 Mar, 14:05" on another day. */
function whenText(ms){
  const when = date(ms)
  const time = when.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})
  return sameDay(when, new Date()) ? time : `${when.toLocaleDateString([], {day: "numeric", month: "short"})}, ${time}`
}

function lengthText(chat){
  if(!Number.isFinite(chat.started_at)) return "never started"
  const minutes = Math.round((chat.finished_at - chat.started_at) / 60000)
  if(minutes < 1) return "under a minute"
  if(minutes < 60) return `${minutes} min`
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`
}

/**
 * How a chat ended, in words. The API says `terminated` whoever pressed
 * "End chat"; `knownReason` is the `chat:terminated` reason this page saw
 * live ("ended by teacher" / "ended by student"), when it saw one.
 */
export function endingText(endedBy, partner, knownReason){
  switch(endedBy){
    case "terminated":
      if(knownReason === "ended by teacher") return "Ended by you"
      if(knownReason === "ended by student") return `Ended by ${partner}`
      return "Ended with “End chat”"
    case "student_left": return `Ended when ${partner} left`
    case "teacher_left": return "Ended when you disconnected"
    case "interrupted": return "Interrupted by a server restart"
    default: return "Ended"
  }
}

/**
 * Wires the "Past chats" section of the teacher page. `me` is the signed-in
 * teacher (`{token, id, name, role}`: the API is read with its token and
 * lists only its chats), `teacherName` the name shown;
 * `reasonOf(chatId)` the live end reason the page saw, if any. Returns
 * `refresh()`, which reloads the list (calls while one runs are folded into
 * one more run after it).
 */
export function pastChats({me, teacherName, reasonOf = () => undefined}){
  session = me
  const teacherId = me.id
  const list = $("past-list")
  const status = $("past-status")
  const more = $("past-more")
  const template = $("past-template")
  const panel = $("transcript")
  const messages = $("transcript-messages")
  const transcriptStatus = $("transcript-status")
  const transcriptMore = $("transcript-more")

  const base = `/api/chats?teacher=${encodeURIComponent(teacherId)}`
  let chats = []              // every chat the API returned, newest first (active ones too)
  let next = null             // the API's cursor for the page after `chats`
  let generation = 0          // bumped by each refresh; older answers are dropped
  let refreshing = false
  let refreshWanted = false
  let loadingMore = false
  const items = new Map()     // chat id → its <li>
  let openChat = null         // the chat whose transcript is shown
  let openItem = null         // its list entry (focus returns to its button)
  let transcriptNext = null   // the API's `after` for the transcript's next page
  let transcriptToken = 0     // bumped by each open and close; older answers are dropped
  let loadingMessages = false

  // ---------------------------------------------------------------- the list
  function say(text){
    if(status.textContent !== text) status.textContent = text
  }

  function summary(){
    const n = chats.filter(finished).length
    return n === 0 ? "No finished chats yet." : n === 1 ? "1 finished chat." : `${n} finished chats.`
  }

  function render(){
    const shown = chats.filter(finished)
    const keep = new Set(shown.map((c) => c.id))
    for(const [id, item] of items){
      if(!keep.has(id)){ item.remove(); items.delete(id) }
    }
    // Insert new entries in place without moving existing ones (a moved
    // button would lose keyboard focus).
    shown.forEach((chat, i) => {
      let item = items.get(chat.id)
      if(!item){ item = makeItem(); items.set(chat.id, item) }
      fillItem(item, chat)
      const at = list.children[i]
      if(at !== item) list.insertBefore(item, at ?? null)
    })
    more.hidden = next === null
  }

  function makeItem(){
    const item = template.content.firstElementChild.cloneNode(true)
    item.querySelector(".past-view").addEventListener("click", () => {
      const chat = chats.find((c) => c.id === item.dataset.chatId)
      if(chat) openTranscript(chat, item)
    })
    return item
  }

  function fillItem(item, chat){
    const partner = displayName(chat.student)
    const ending = endingText(chat.ended_by, partner, reasonOf(chat.id))
    item.dataset.chatId = chat.id
    item.dataset.student = partner
    item.querySelector(".past-partner").textContent = partner
    item.querySelector(".past-ended").textContent = ending
    const time = item.querySelector(".past-time")
    time.dateTime = date(chat.finished_at).toISOString()
    time.textContent = whenText(chat.finished_at)
    item.querySelector(".past-length").textContent = `· ${lengthText(chat)}`
    const view = item.querySelector(".past-view")
    const lowerFirst = ending.charAt(0).toLowerCase() + ending.slice(1)
    view.setAttribute("aria-label", `View chat with ${partner}, ${lowerFirst} at ${time.textContent}`)
    view.setAttribute("aria-controls", "transcript")
    view.setAttribute("aria-expanded", String(openChat?.id === chat.id))
  }

  function chatsOf(body){
    if(!Array.isArray(body.chats)) throw new ApiError("The server's answer could not be read.")
    return {chats: body.chats.filter(isChat), next: typeof body.next === "string" ? body.next : null}
  }

  async function refresh(){
    refreshWanted = true
    if(refreshing) return
    refreshing = true
    try {
      while(refreshWanted){
        refreshWanted = false
        const mine = ++generation
        // Reload as many chats as are shown, so "Load more" pages stay.
        const limit = Math.min(MAX_PAGE, Math.max(PAGE, chats.length))
        if(chats.length === 0) say("Loading…")
        try {
          const page = chatsOf(await getJson(`${base}&limit=${limit}`))
          if(mine !== generation) continue
          chats = page.chats
          next = page.next
          render()
          say(summary())
        } catch(error){
          say(`Could not load past chats. ${error instanceof ApiError ? error.message : "Something went wrong."} Press Refresh to try again.`)
        }
      }
    } finally {
      refreshing = false
    }
  }

  async function loadMore(){
    if(loadingMore || next === null) return
    loadingMore = true
    // aria-disabled, not disabled: a disabled button would drop the focus.
    more.setAttribute("aria-disabled", "true")
    const mine = generation
    const before = chats.filter(finished).length
    say("Loading more…")
    try {
      // A page may hold only chats still going on (they are not listed):
      // then look one page further, a few times at most.
      for(let i = 0; i < AUTO_PAGES && next !== null; i++){
        const page = chatsOf(await getJson(`${base}&limit=${PAGE}&before=${encodeURIComponent(next)}`))
        if(mine !== generation) return
        const known = new Set(chats.map((c) => c.id))
        chats = chats.concat(page.chats.filter((c) => !known.has(c.id)))
        next = page.next
        if(chats.filter(finished).length > before) break
      }
      const added = chats.filter(finished).length - before
      const hadFocus = document.activeElement === more
      render()
      say(added > 0 ? `${added} more loaded. ${summary()}` : summary())
      // Keep the keyboard where the list continues.
      const first = list.children[before]?.querySelector(".past-view")
      if(hadFocus && added > 0 && first) first.focus()
      else if(hadFocus && more.hidden) $("past-title").focus()
    } catch(error){
      say(`Could not load more chats. ${error instanceof ApiError ? error.message : "Something went wrong."}`)
    } finally {
      loadingMore = false
      more.removeAttribute("aria-disabled")
    }
  }

  more.addEventListener("click", loadMore)
  $("past-refresh").addEventListener("click", refresh)

  // ---------------------------------------------------------------- one transcript
  function senderOf(chat, sender){
    if(sender === "teacher") return {name: `${teacherName} (you)`, role: "teacher", own: true}
    if(sender === "student") return {name: displayName(chat.student), role: "student", own: false}
    return {name: String(sender ?? "someone"), role: "", own: false}
  }

  function appendTranscriptMessage(chat, message){
    const from = senderOf(chat, message?.sender)
    const payload = message?.payload
    const text = typeof payload?.message === "string" ? payload.message : JSON.stringify(payload ?? null)
    const when = Number.isFinite(message?.at) ? date(message.at) : null

    const item = document.createElement("li")
    item.className = from.own ? "msg own" : "msg"
    const meta = document.createElement("div")
    meta.className = "meta"
    const sender = document.createElement("span")
    sender.className = "sender"
    sender.textContent = from.name
    meta.append(sender)
    if(from.role){
      const role = document.createElement("span")
      role.className = "role"
      role.textContent = from.role
      meta.append(role)
    }
    if(when){
      const time = document.createElement("time")
      time.dateTime = when.toISOString()
      time.textContent = when.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})
      meta.append(time)
    }
    const body = document.createElement("div")
    body.className = "text"
    renderText(body, text)
    item.append(meta, body)
    messages.append(item)
  }

  function markOpen(){
    for(const [id, item] of items){
      const open = openChat?.id === id
      item.toggleAttribute("aria-current", open)
      item.querySelector(".past-view").setAttribute("aria-expanded", String(open))
    }
  }

  async function openTranscript(chat, item){
    const token = ++transcriptToken
    openChat = chat
    openItem = item
    transcriptNext = null
    const partner = displayName(chat.student)
    $("transcript-partner").textContent = partner
    // Issue 14: how long the student waited, and the question (if any).
    const waitedMs = Number.isFinite(chat.queued_at) && Number.isFinite(chat.created_at) ? chat.created_at - chat.queued_at : null
    $("transcript-meta").textContent =
      `${endingText(chat.ended_by, partner, reasonOf(chat.id))} at ${whenText(chat.finished_at)} · ${lengthText(chat)}` +
      (waitedMs !== null && waitedMs >= 0 ? ` · waited ${waited(chat.created_at - waitedMs, chat.created_at)} in line` : "")
    const question = typeof chat.question === "string" ? chat.question : ""
    $("transcript-question").hidden = question === ""
    renderText($("transcript-question-text"), question)
    messages.replaceChildren()
    transcriptMore.hidden = true
    transcriptStatus.textContent = "Loading the transcript…"
    panel.hidden = false
    markOpen()
    $("transcript-title").focus()
    loadingMessages = false
    await loadMessages(chat, token, 0)
  }

  async function loadMessages(chat, token, after){
    loadingMessages = true
    transcriptMore.setAttribute("aria-disabled", "true")
    const hadFocus = document.activeElement === transcriptMore
    const before = messages.children.length
    try {
      const query = after > 0 ? `?after=${after}` : ""
      const body = await getJson(`/api/chats/${encodeURIComponent(chat.id)}/transcript${query}`)
      if(token !== transcriptToken) return
      if(!Array.isArray(body.messages)) throw new ApiError("The server's answer could not be read.")
      for(const message of body.messages) appendTranscriptMessage(chat, message)
      transcriptNext = Number.isInteger(body.next) ? body.next : null
      transcriptMore.hidden = transcriptNext === null
      const n = messages.children.length
      transcriptStatus.textContent = n === 0 ? "No messages were sent in this chat."
        : `${n} message${n === 1 ? "" : "s"}${transcriptNext === null ? "" : " so far"}.`
      // Keyboard users who pressed "Load more messages": to the heading when
      // the button went away, else show where the new messages start.
      if(hadFocus && transcriptMore.hidden) $("transcript-title").focus()
      else if(hadFocus && messages.children[before]) messages.children[before].scrollIntoView({block: "nearest"})
    } catch(error){
      if(token !== transcriptToken) return
      transcriptStatus.textContent = `Could not load the transcript. ${error instanceof ApiError ? error.message : "Something went wrong."}`
    } finally {
      if(token === transcriptToken){
        loadingMessages = false
        transcriptMore.removeAttribute("aria-disabled")
      }
    }
  }

  function closeTranscript(){
    if(panel.hidden) return
    transcriptToken++
    openChat = null
    panel.hidden = true
    messages.replaceChildren()
    markOpen()
    const button = openItem?.isConnected ? openItem.querySelector(".past-view") : null
    openItem = null
    ;(button ?? $("past-title")).focus()
  }

  transcriptMore.addEventListener("click", () => {
    if(openChat && transcriptNext !== null && !loadingMessages) loadMessages(openChat, transcriptToken, transcriptNext)
  })
  $("transcript-close").addEventListener("click", closeTranscript)
  panel.addEventListener("keydown", (event) => {
    if(event.key === "Escape"){ event.preventDefault(); closeTranscript() }
  })

  return {refresh}
}
