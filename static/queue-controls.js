// The teacher page's queue controls (on `presence:teachers`): whether the
// queue is open (`queue:state`, asked for with `queueState: true`), "Close the
// queue" / "Open the queue" with an optional message for students
// (`queue:close` / `queue:open`), and an announcement to everyone in line and
// every teacher (`queue:announce`, 1 to 500 characters). Until the server
// says the queue's state, the controls stay disabled.

import {onCompose} from "./compose.js"

const MAX_TEXT = 500

/** `presence`: the teachers' channel; `$`: the page's getElementById. Answers `{state(payload), render()}`. */
export function queueControls({presence, $, connected}){
  let current = null   // {open, message}
  let busy = false

  function render(){
    const known = current !== null
    $("queue-open").textContent = !known ? "…" : current.open ? "open" : "closed"
    $("queue-open").dataset.open = known ? String(current.open) : ""
    $("queue-message").textContent = known && current.message ? `Message to students: “${current.message}”` : ""
    $("queue-toggle").textContent = known && !current.open ? "Open the queue" : "Close the queue"
    $("queue-toggle").disabled = !known || busy || !connected()
    $("queue-note-label").textContent = known && !current.open
      ? "Message when opening (optional)"
      : "Message to students while closed (optional)"
    $("announce-send").disabled = !connected()
  }

  const say = (text) => { $("queue-status").textContent = text }

  function state(payload){
    if(typeof payload?.open !== "boolean") return
    current = {open: payload.open, message: typeof payload.message === "string" ? payload.message : null}
    render()
  }

  const note = onCompose($("queue-form"), $("queue-note"), (text) => {
    if(current === null || busy) return
    const event = current.open ? "queue:close" : "queue:open"
    busy = true
    render()
    presence.push(event, text ? {message: text} : {})
      .receive("ok", (reply) => {
        busy = false
        state(reply)
        $("queue-note").value = ""
        note.refresh()
        say(current?.open ? "The queue is open." : "The queue is closed. Students already in line keep their place.")
      })
      .receive("error", (resp) => { busy = false; render(); say(`Could not change the queue: ${resp?.reason ?? "unknown reason"}.`) })
      .receive("timeout", () => { busy = false; render(); say("The server did not answer. Try again.") })
  }, {limit: MAX_TEXT, keep: true, allowEmpty: true})

  const announce = onCompose($("announce-form"), $("announce-text"), (text) => {
    presence.push("queue:announce", {message: text})
      .receive("ok", () => {
        $("announce-text").value = ""
        announce.refresh()
        say("Announcement sent.")
      })
      .receive("error", (resp) => say(`Could not send the announcement: ${resp?.reason ?? "unknown reason"}.`))
      .receive("timeout", () => say("The server did not answer. Try again."))
  }, {limit: MAX_TEXT, keep: true})

  render()
  return {state, render}
}
