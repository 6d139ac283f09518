// What teachers announce to everyone (`queue:announcement` `{message, from,
// at}`, on channels joined with `queueState: true`): one banner each under
// the header, newest first, "Announcement from Ms Rivera · 14:05" and the
// text, each with "Dismiss". At most three are shown; the oldest goes.

import {clock, displayName, renderText} from "./common.js"

const KEEP = 3

/** Shows the announcements in `container` (a live region). Answers `{show(payload)}`. */
export function announcements(container){
  return {
    show(payload){
      if(typeof payload?.message !== "string" || !payload.message.trim()) return
      const item = document.createElement("div")
      item.className = "announcement"
      item.setAttribute("role", "note")
      const head = document.createElement("p")
      head.className = "announcement-from"
      const from = document.createElement("strong")
      from.textContent = `Announcement from ${displayName(payload.from)}`
      head.append(from)
      if(Number.isFinite(payload.at)){
        const time = document.createElement("time")
        time.dateTime = new Date(payload.at).toISOString()
        time.textContent = clock(payload.at)
        head.append(" · ", time)
      }
      const text = document.createElement("div")
      text.className = "announcement-text"
      renderText(text, payload.message)
      const dismiss = document.createElement("button")
      dismiss.type = "button"
      dismiss.className = "secondary dismiss"
      dismiss.textContent = "Dismiss"
      dismiss.setAttribute("aria-label", `Dismiss the announcement from ${displayName(payload.from)}`)
      dismiss.addEventListener("click", () => {
        item.remove()
        container.hidden = container.childElementCount === 0
      })
      item.append(head, text, dismiss)
      container.prepend(item)
      while(container.childElementCount > KEEP) container.lastElementChild.remove()
      container.hidden = false
    },
  }
}
