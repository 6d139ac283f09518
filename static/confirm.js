// Asking before something that cannot be undone ("End chat"), in the page
// rather than with window.confirm: the button is replaced by a question and
// two buttons, "Yes, …" (does it) and "Keep chatting" (does nothing). The
// focus goes to the harmless answer; Escape is that answer too.

/**
 * Makes `button` ask first. `question()`, `yes()` and `labels()` are called
 * each time it is pressed (the names in them may change): the text of the
 * question, of the "yes" button, and `{yes, no}` accessible names (optional).
 * `onConfirm()` runs on "yes". Answers `{cancel()}` (the page closes the
 * question, e.g. when the chat ended meanwhile) and `open` (whether it is asking).
 */
export function confirmFirst(button, {question, yes, labels = () => ({}), onConfirm}){
  const box = document.createElement("div")
  box.className = "confirm"
  box.setAttribute("role", "group")
  box.hidden = true
  const text = document.createElement("p")
  text.className = "confirm-question"
  text.id = `confirm-${Math.random().toString(36).slice(2)}`
  box.setAttribute("aria-labelledby", text.id)
  const yesButton = document.createElement("button")
  yesButton.type = "button"
  yesButton.className = "danger confirm-yes"
  const noButton = document.createElement("button")
  noButton.type = "button"
  noButton.className = "secondary confirm-no"
  noButton.textContent = "Keep chatting"
  box.append(text, yesButton, noButton)
  button.after(box)

  const close = (focusBack) => {
    if(box.hidden) return
    const hadFocus = box.contains(document.activeElement)
    box.hidden = true
    button.hidden = false
    if(focusBack && hadFocus) button.focus()
  }
  button.addEventListener("click", () => {
    text.textContent = question()
    yesButton.textContent = yes()
    const {yes: yesLabel, no: noLabel} = labels()
    if(yesLabel) yesButton.setAttribute("aria-label", yesLabel)
    if(noLabel) noButton.setAttribute("aria-label", noLabel)
    button.hidden = true
    box.hidden = false
    noButton.focus()
  })
  noButton.addEventListener("click", () => close(true))
  box.addEventListener("keydown", (event) => {
    if(event.key === "Escape") close(true)
  })
  yesButton.addEventListener("click", () => {
    close(false)
    onConfirm()
  })
  return {cancel: () => close(false), get open(){ return !box.hidden }}
}
