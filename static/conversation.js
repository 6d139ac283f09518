// One chat as a page shows it (the student's chat, or one pane of the
// teacher's): its `chats:<cid>` channel, the messages in its log, and what
// this side wrote that the server has not yet confirmed. Both pages use it.
//
// Joining. The channel asks for `endReason` and `awayNotices` (PROTOCOL 6.3):
// `chat:away` / `chat:back` say when the other side drops and returns. A
// join reply `{"seq": S, "held": H}` says S messages were relayed so far and
// the first H receive events to follow are messages held while this side was
// away. The log is then rebuilt from the transcript (`GET
// /api/chats/<cid>/transcript`, the messages with seq ≤ S, in the order they
// were sent), and those H events are skipped: they are already shown. A page
// that reloads gets its history this way; one that lost its connection gets
// what it missed, in order. Without the transcript (not recorded, not
// readable) the log stays as it is and held messages are shown as they come.
//
// When the connection drops the page calls `detach()`: the channel is
// dropped on this side (phoenix.js must not rejoin it by itself: the page
// decides from its presence join reply whether the chat is still there) and
// `rejoin()` joins it again on the new connection.
//
// Own messages are never shown as sent before the server confirmed them.
// Written while the chat cannot be reached, a message waits ("Not sent yet")
// and is sent after the next join. A sent message shows "Sending…" until a
// `<role>:joined` pushed right behind it is answered: the server answers a
// connection's pushes in order, and a send that fails is answered with an
// error, so an `ok` for the later push means the message was recorded and
// relayed (or held for the other side). A message still unconfirmed when the
// connection dropped is looked up in the transcript after the rejoin (by its
// `id`) and sent again if the server never got it. A refused one ("recipient
// away", "chat finished", …) says so and offers "Send again".

import {apiFetch, appendMessage, appendNote, messagePayload, setDelivery} from "./common.js"

// How often a transcript that lags behind the join reply is read again
// (the store commits a few milliseconds after relaying), and how long apart.
const HISTORY_TRIES = 8
const HISTORY_BACKOFF_MS = 150
const TRANSCRIPT_PAGE = 1000

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Why the server refused a message, as a user reads it. */
function refusal(reason, partner){
  switch(reason){
    case "recipient away": return `${partner} is away and cannot take more messages right now.`
    case "chat finished": return "the chat had ended."
    case "transcript backlog":
    case "transcript unavailable": return "the server could not record it."
    default: return typeof reason === "string" ? `${reason}.` : "the server refused it."
  }
}

export class Conversation {
  /**
   * `link`: the page's connection (common.js `connect`); `me`: its session
   * ({token, id, name, role}); `chatId`, `partner` (a display name); `log`:
   * the <ol> of messages; `hooks`: what the page does on `ready()`,
   * `terminated(payload)`, `closed()` (phx_close from the server),
   * `joinError(reason, rejoining)`, `away(until)`, `back()`, `joined(rejoining)`
   * (before the history is shown and before any event that follows the reply),
   * `message(payload)` (a message from the other side was shown live; not
   * for the history rebuilt from the transcript).
   */
  constructor({link, me, chatId, partner, log, hooks}){
    this.link = link
    this.me = me
    this.role = me.role
    this.id = chatId
    this.partner = partner
    this.log = log
    this.hooks = hooks
    this.channel = null
    this.generation = 0     // bumped by every join and detach: late answers of an older one are ignored
    this.joins = 0
    this.joined = false
    this.queued = null      // events that arrive while the history is read, in order
    this.skip = 0           // held receive events still to skip (already shown from the transcript)
    this.outbox = []        // own messages not confirmed: {payload, item, state}
    this.over = false
  }

  /** Joins the chat (again, after `detach()`). */
  join(){
    if(this.over) return
    const generation = ++this.generation
    const rejoining = this.joins++ > 0
    const channel = this.link.socket.channel(`chats:${this.id}`,
      {userId: this.me.id, role: this.role, endReason: true, awayNotices: true})
    this.channel = channel
    const on = (event, handle) => channel.on(event, (payload) => {
      if(this.channel !== channel) return
      if(this.queued) this.queued.push([handle, event, payload])
      else this.dispatch(handle, event, payload)
    })
    on(`${this.role}:receive`, (payload) => this.received(payload))
    on("chat:ready", () => this.hooks.ready?.())
    on("chat:terminated", (payload) => this.hooks.terminated?.(payload))
    on("chat:away", (payload) => this.hooks.away?.(Number.isFinite(payload?.until) ? payload.until : null))
    on("chat:back", () => this.hooks.back?.())
    channel.onClose(() => {
      if(this.channel === channel && !this.over) this.hooks.closed?.()
    })
    channel.join()
      .receive("ok", (reply) => { if(this.channel === channel) this.restore(reply, generation) })
      .receive("error", (resp) => {
        if(this.channel !== channel) return
        this.end()
        this.hooks.joinError?.(resp?.reason, rejoining)
      })
  }

  /** The connection went: forget the channel (it is gone with it). */
  detach(){
    this.generation++
    if(this.channel){
      this.link.socket.remove(this.channel)
      this.channel.rejoinTimer?.reset?.()
    }
    this.channel = null
    this.joined = false
    this.queued = null
    this.skip = 0
    for(const entry of this.outbox) if(entry.state === "pending") setDelivery(entry.item, "pending")
  }

  /** Joins again on the new connection, unless this one is joined (or joining) still. */
  rejoin(){
    if(this.over || this.channel) return
    this.join()
  }

  /** The chat is over here: leave its channel; what was never sent says so. */
  end(){
    if(this.over) return
    this.over = true
    this.generation++
    this.queued = null
    if(this.channel) this.channel.leave()
    this.joined = false
    for(const entry of this.outbox){
      if(entry.state === "pending") this.fail(entry, "the chat ended before it could be sent.", false)
      else if(entry.state === "sending") setDelivery(entry.item, "unknown")
    }
  }

  /** Writes `text` to the other side (now, or once the chat can be reached). */
  send(text){
    if(this.over) return
    const payload = messagePayload(text, this.me.name)
    const entry = {payload, state: "pending", item: null}
    entry.item = appendMessage(this.log, payload, {own: true, delivery: "pending"})
    this.outbox.push(entry)
    this.flush()
  }

  // ------------------------------------------------------------ internals
  dispatch(handle, event, payload){
    if(event === `${this.role}:receive` && this.skip > 0){
      this.skip--
      return
    }
    handle(payload)
  }

  received(payload){
    appendMessage(this.log, payload, {fallbackName: this.partner})
    this.hooks.message?.(payload)
  }

  async restore(reply, generation){
    this.joined = true
    this.queued = []
    this.channel.push(`${this.role}:joined`, {})
    this.hooks.joined?.(this.joins > 1)
    const seq = reply?.seq
    const held = reply?.held
    let skip = 0
    if(Number.isInteger(seq) && Number.isInteger(held)){
      const history = await this.history(seq)
      if(generation !== this.generation) return
      if(history) {
        this.rebuild(history)
        skip = held
      } else {
        this.couldNotRestore()
      }
    }
    const queued = this.queued
    this.queued = null
    this.skip = skip
    for(const [handle, event, payload] of queued) this.dispatch(handle, event, payload)
    this.flush()
  }

  /** The transcript's messages 1..=seq, or null when it cannot be read. */
  async history(seq){
    if(seq === 0) return []
    for(let attempt = 1; attempt <= HISTORY_TRIES; attempt++){
      const messages = []
      let after = null
      let readable = true
      for(;;){
        const query = `limit=${TRANSCRIPT_PAGE}${after === null ? "" : `&after=${after}`}`
        let body = null
        try {
          const response = await apiFetch(this.me, `/api/chats/${encodeURIComponent(this.id)}/transcript?${query}`, {cache: "no-store"})
          if(response.ok) body = await response.json()
        } catch {}
        if(!Array.isArray(body?.messages)){ readable = false; break }
        messages.push(...body.messages)
        const last = messages.at(-1)?.seq ?? 0
        if(last >= seq || body.next === null || body.next === undefined) break
        after = body.next
      }
      if(readable && messages.some((m) => m.seq >= seq)) return messages.filter((m) => m.seq <= seq)
      await sleep(HISTORY_BACKOFF_MS * attempt)
    }
    return null
  }

  /** Shows `history` in place of the messages shown so far; settles the outbox against it. */
  rebuild(history){
    for(const item of this.log.querySelectorAll(".msg:not(.system)")) item.remove()
    const recorded = new Set()
    for(const m of history){
      const own = m.sender === this.role
      if(own && typeof m.payload?.id === "string") recorded.add(m.payload.id)
      appendMessage(this.log, m.payload, {own, fallbackName: own ? this.me.name : this.partner, at: m.at})
    }
    const outbox = this.outbox
    this.outbox = []
    for(const entry of outbox){
      if(recorded.has(entry.payload.id)) continue        // the server has it: shown above
      // Never recorded (lost with the connection), or not sent yet: send it now.
      if(entry.state === "sending") entry.state = "pending"
      entry.item = appendMessage(this.log, entry.payload, {own: true, delivery: entry.state === "failed" ? null : "pending"})
      if(entry.state === "failed") setDelivery(entry.item, {failed: entry.reason}, entry.retry)
      this.outbox.push(entry)
    }
  }

  couldNotRestore(){
    if(!this.log.querySelector(".msg:not(.system)")) appendNote(this.log, "Earlier messages could not be loaded.")
    for(const entry of this.outbox){
      if(entry.state === "sending"){
        entry.state = "unknown"
        setDelivery(entry.item, "unknown", () => this.again(entry))
      }
    }
    this.outbox = this.outbox.filter((entry) => entry.state !== "unknown")
  }

  canSend(){
    return !this.over && this.joined && this.queued === null && this.link.up && this.channel !== null
  }

  /** Sends what waits, in order, and one `<role>:joined` behind it as the receipt. */
  flush(){
    if(!this.canSend()) return
    const channel = this.channel
    const batch = this.outbox.filter((entry) => entry.state === "pending")
    if(batch.length === 0) return
    for(const entry of batch){
      entry.state = "sending"
      setDelivery(entry.item, "sending")
      channel.push(`${this.role}:send`, entry.payload)
        .receive("error", (resp) => this.fail(entry, refusal(resp?.reason, this.partner)))
    }
    channel.push(`${this.role}:joined`, {})
      .receive("ok", () => {
        for(const entry of batch){
          if(entry.state !== "sending") continue
          entry.state = "sent"
          setDelivery(entry.item, "sent")
        }
        this.outbox = this.outbox.filter((entry) => entry.state !== "sent")
      })
  }

  fail(entry, reason, retry = true){
    entry.state = "failed"
    entry.reason = reason
    entry.retry = retry ? () => this.again(entry) : null
    setDelivery(entry.item, {failed: reason}, entry.retry)
  }

  /** "Send again": the same text as a new message. */
  again(entry){
    this.outbox = this.outbox.filter((e) => e !== entry)
    entry.item.remove()
    this.send(entry.payload.message)
  }
}
