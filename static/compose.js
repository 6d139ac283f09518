// The compose box of a chat (the student's, and each pane of the teacher's):
// a <textarea> in a <form>. Enter sends, Shift+Enter starts a new line (so a
// message keeps its line breaks, and code can be pasted), the box grows with
// its text up to a few lines. Nothing is ever cut silently: a message may be
// at most `limit` characters (Unicode code points); near the limit a counter
// says "1,980 / 2,000", and over it the counter says by how much, the box is
// marked invalid and nothing is sent until it is shortened.

import {MAX_MESSAGE} from "./common.js"

// The counter shows from this share of the limit on.
const COUNTER_FROM = 0.8
const number = (n) => n.toLocaleString("en")

/** How many characters `text` has, as the limit counts them (code points). */
export const lengthOf = (text) => [...text].length

/**
 * Wires `form` and its `input` (a textarea): calls `send(text)` with the
 * trimmed text, then clears the box. Options: `limit`; `keep` (the text
 * stays after sending, e.g. a question that can still be changed);
 * `allowEmpty` (an empty box is sent too, as ""). Answers `{refresh()}`
 * (after the page changed the box's value).
 */
export function onCompose(form, input, send, {limit = MAX_MESSAGE, keep = false, allowEmpty = false} = {}){
  const counter = document.createElement("p")
  counter.className = "counter"
  counter.id = `${input.id}-counter`
  counter.setAttribute("aria-live", "polite")
  counter.hidden = true
  form.append(counter)
  input.setAttribute("aria-describedby", counter.id)

  const render = () => {
    const n = lengthOf(input.value)
    const over = n > limit
    counter.hidden = n < limit * COUNTER_FROM
    counter.dataset.over = String(over)
    counter.textContent = over
      ? `${number(n)} / ${number(limit)}: ${number(n - limit)} character${n - limit === 1 ? "" : "s"} too many. Shorten the message to send it.`
      : `${number(n)} / ${number(limit)}`
    if(over) input.setAttribute("aria-invalid", "true")
    else input.removeAttribute("aria-invalid")
    // Grow with the text (up to the stylesheet's max-height), shrink when sent.
    if(input.tagName !== "TEXTAREA") return
    input.style.height = "auto"
    if(input.value) input.style.height = `${input.scrollHeight + 2}px`
  }

  input.addEventListener("input", render)
  input.addEventListener("keydown", (event) => {
    if(event.key !== "Enter" || event.shiftKey || event.altKey || event.isComposing) return
    event.preventDefault()
    form.requestSubmit()
  })
  form.addEventListener("submit", (event) => {
    event.preventDefault()
    const text = input.value.trim()
    if((!text && !allowEmpty) || input.disabled) return
    if(lengthOf(text) > limit){
      render()
      counter.hidden = false
      input.focus()
      return
    }
    send(text)
    if(keep) return
    input.value = ""
    render()
    input.focus()
  })
  render()
  return {refresh: render}
}
