// The teacher page's waiting list (`queue:waiting`, asked for with
// `waitingList: true`): who is in line, in order, each with their place, name,
// how long they have waited ("12 min") and their question, so a teacher can
// prepare. Taking a student stays first come, first served ("Take next
// student"): the list has no buttons. Away students keep their place and are
// marked "away". The server lists the first 50; "and 13 more" says the rest.

import {displayName, renderText} from "./common.js"

/** "under a minute", "5 min", "1 h 05 min": how long since unix ms `since`. */
export function waited(since, now = Date.now()){
  const minutes = Math.floor(Math.max(0, now - since) / 60000)
  if(minutes < 1) return "under a minute"
  if(minutes < 60) return `${minutes} min`
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`
}

/**
 * Shows the list in `list` (an <ol>) and a summary in `status`. Answers
 * `{update(payload), questionOf(studentId), total}`; `total` is null until
 * the first list came.
 */
export function waitingList({list, status}){
  const questions = new Map()   // student id → question (of the latest list)
  let latest = null

  function render(){
    const now = Date.now()
    const students = latest?.students ?? []
    list.replaceChildren(...students.map((entry) => {
      const item = document.createElement("li")
      item.className = "waiting-entry"
      item.dataset.studentId = String(entry.id)
      if(entry.away) item.dataset.away = "true"
      const head = document.createElement("div")
      head.className = "waiting-head"
      const position = document.createElement("span")
      position.className = "waiting-position"
      position.textContent = String(entry.position)
      const name = document.createElement("strong")
      name.className = "waiting-name"
      name.textContent = typeof entry.name === "string" && entry.name ? entry.name : displayName(entry.id)
      const time = document.createElement("span")
      time.className = "waiting-time"
      time.textContent = Number.isFinite(entry.since) ? `waiting ${waited(entry.since, now)}` : ""
      head.append(position, " ", name, " ", time)
      if(entry.away){
        const away = document.createElement("span")
        away.className = "waiting-away"
        away.textContent = "away"
        head.append(" ", away)
      }
      const question = document.createElement("div")
      question.className = "waiting-question"
      if(typeof entry.question === "string" && entry.question) renderText(question, entry.question)
      else {
        question.textContent = "No question given."
        question.dataset.none = "true"
      }
      item.append(head, question)
      return item
    }))
    const total = latest?.total
    status.textContent = latest === null ? "Loading…"
      : total === 0 ? "Nobody is waiting."
      : total > students.length ? `Showing the first ${students.length} of ${total}.`
      : `${total} waiting.`
  }
  // "waiting 5 min" moves on by itself.
  setInterval(() => { if(latest?.students?.length) render() }, 30000)

  return {
    update(payload){
      if(!Array.isArray(payload?.students)) return
      const students = payload.students.filter((s) => s && (typeof s.id === "string" || Number.isFinite(s.id)))
      latest = {students, total: Number.isInteger(payload.total) ? payload.total : students.length}
      for(const entry of students) questions.set(String(entry.id), typeof entry.question === "string" ? entry.question : null)
      render()
    },
    /** The question of `studentId` in the latest list (or an earlier one): null if none given, undefined if never listed. */
    questionOf(studentId){ return questions.get(String(studentId)) },
    get total(){ return latest?.total ?? null },
    render,
  }
}
