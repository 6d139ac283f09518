// What one chat log has that its reader has not seen: an unread count (the
// teacher's panes show it as a badge, "2 new") and a "New messages ↓" button
// over the log when a message arrives while it is scrolled up.
//
// A message is unread when it arrives while the reader is elsewhere: the
// focus is outside `scope` (another pane, another part of the page), the tab
// is hidden, or the log is scrolled up so the message is out of sight. The
// count goes back to zero when the reader comes to it: the focus enters
// `scope` (or the tab is shown again with the focus in it) while the log is
// at the bottom, the log is scrolled to the bottom by the reader, or the
// button is pressed (which scrolls there).

const NEAR_BOTTOM_PX = 40

const atBottom = (log) => log.scrollHeight - log.scrollTop - log.clientHeight < NEAR_BOTTOM_PX

/**
 * Watches `log` (an <ol class="messages">), which it wraps in a
 * `.log-wrap` holding the button. `onCount(n)` is called whenever the count
 * changes. Answers `{incoming(), clear(), get count()}`: the page calls
 * `incoming()` after each message from the other side was appended.
 */
export function watchLog(log, {scope, onCount = () => {}}){
  const wrap = document.createElement("div")
  wrap.className = "log-wrap"
  log.replaceWith(wrap)
  wrap.append(log)
  const jump = document.createElement("button")
  jump.type = "button"
  jump.className = "jump"
  jump.textContent = "New messages ↓"
  jump.hidden = true
  wrap.append(jump)

  let count = 0
  let userScrolls = false   // a wheel, touch or key on the log: the reader scrolls, not the page
  const set = (n) => {
    if(n === count) return
    count = n
    onCount(n)
  }
  const seen = () => {
    jump.hidden = true
    set(0)
  }
  const reading = () => document.visibilityState === "visible" && scope.contains(document.activeElement)

  for(const event of ["wheel", "touchstart", "pointerdown", "keydown"]){
    log.addEventListener(event, () => { userScrolls = true }, {passive: true})
  }
  log.addEventListener("scroll", () => {
    if(!userScrolls || !atBottom(log)) return
    seen()
  }, {passive: true})
  scope.addEventListener("focusin", () => { if(atBottom(log)) seen() })
  document.addEventListener("visibilitychange", () => { if(reading() && atBottom(log)) seen() })
  jump.addEventListener("click", () => {
    log.scrollTop = log.scrollHeight
    seen()
    scope.querySelector("textarea:not(:disabled)")?.focus()
  })

  return {
    incoming(){
      const inSight = atBottom(log)
      if(!inSight) jump.hidden = false
      if(!inSight || !reading()) set(count + 1)
    },
    clear: seen,
    get count(){ return count },
  }
}
